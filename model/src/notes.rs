//! The note block (MODEL.md section 3.1): an importance scorer and the note projection.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear, linear_no_bias, Linear, VarBuilder};

use crate::config::Config;

/// What the note block writes for a run of tokens.
#[derive(Debug, Clone)]
pub struct Written {
    /// `note_t = W_n u_t`: (B, T, d_note).
    pub notes: Tensor,
    /// Importance `s_t`: (B, T), in (0, 1).
    pub scores: Tensor,
    /// `ln s_t`, computed stably from the logit: (B, T). It biases the attention logits, which is
    /// how the scorer gets gradients (the threshold `s_t > tau1` has none).
    pub log_scores: Tensor,
}

/// Importance scorer `s = sigmoid(w2 . relu(W1 u))` (d -> d/4 -> 1, with biases) and the note
/// projection `W_n` (d -> d_note, no bias).
///
/// Weights: `w1.weight` (d/4, d), `w1.bias`, `w2.weight` (1, d/4), `w2.bias`, `w_n.weight`
/// (d_note, d).
#[derive(Debug, Clone)]
pub struct NoteBlock {
    w1: Linear,
    w2: Linear,
    w_n: Linear,
}

impl NoteBlock {
    /// Loads (or, from a fresh VarMap, initialises) the block's weights.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, q) = (cfg.d_model, cfg.d_model / 4);
        Ok(Self {
            w1: linear(d, q, vb.pp("w1"))?,
            w2: linear(q, 1, vb.pp("w2"))?,
            w_n: linear_no_bias(d, cfg.d_note, vb.pp("w_n"))?,
        })
    }

    /// Scores every token of `u` (B, T, d) and projects its note. With `differentiable` off on
    /// the CPU or a CUDA device, the scorer after W1's matmul is one fused pass
    /// ([`memmamba_kernels::infer::note_scores`]).
    pub fn write(&self, u: &Tensor, differentiable: bool) -> Result<Written> {
        let notes = self.w_n.forward(u)?;
        let fused = crate::attention::fused(u, differentiable);
        if let (true, Some(b1), Some(b2)) = (fused, self.w1.bias(), self.w2.bias()) {
            let h = u.broadcast_matmul(&self.w1.weight().t()?)?;
            let (scores, log_scores) =
                memmamba_kernels::infer::note_scores(&h, b1, self.w2.weight(), b2)?;
            return Ok(Written {
                notes,
                scores,
                log_scores,
            });
        }
        let logit = self
            .w2
            .forward(&self.w1.forward(u)?.relu()?)?
            .squeeze(D::Minus1)?;
        let scores = candle_nn::ops::sigmoid(&logit)?;
        // ln sigmoid(x) = -softplus(-x) = min(x, 0) - ln(1 + exp(-|x|))
        let log_scores = (logit.minimum(0.0)? - (logit.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        Ok(Written {
            notes,
            scores,
            log_scores,
        })
    }
}
