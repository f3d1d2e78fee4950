//! The note block (MODEL.md section 3.1): an importance scorer and the note projection.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear, linear_no_bias, Linear, VarBuilder};

use crate::config::Config;

/// What the note block writes for a run of tokens.
#[derive(Debug, Clone)]
pub struct Written {
    /// `note_t = W_n u_t`: (B, T, d_note).
    pub notes: Tensor,
    /// `ln s_t`, the importance as a log-score, exact in both tails of the sigmoid: (B, T). It
    /// biases the attention logits, which is how the scorer gets gradients (the threshold
    /// `s_t > tau1` has none), and the pool ranks notes by it: a trained scorer's `s_t` is 1.0
    /// in f32 for every logit past ~17, its log-score only past ~104.
    pub log_scores: Tensor,
    /// The scorer's logits `x_t` (`s_t = sigmoid(x_t)`), kept on the differentiable path only,
    /// where training regularises them: (B, T).
    pub logits: Option<Tensor>,
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
    /// ([`memmamba_kernels::infer::note_log_scores`]).
    pub fn write(&self, u: &Tensor, differentiable: bool) -> Result<Written> {
        let notes = self.w_n.forward(u)?;
        let fused = crate::attention::fused(u, differentiable);
        if let (true, Some(b1), Some(b2)) = (fused, self.w1.bias(), self.w2.bias()) {
            let h = u.broadcast_matmul(&self.w1.weight().t()?)?;
            let log_scores =
                memmamba_kernels::infer::note_log_scores(&h, b1, self.w2.weight(), b2)?;
            return Ok(Written {
                notes,
                log_scores,
                logits: None,
            });
        }
        let logits = self
            .w2
            .forward(&self.w1.forward(u)?.relu()?)?
            .squeeze(D::Minus1)?;
        Ok(Written {
            notes,
            log_scores: ln_sigmoid(&logits)?,
            logits: differentiable.then_some(logits),
        })
    }
}

/// `ln sigmoid(x) = min(x, 0) - log1p(exp(-|x|))` in candle ops, differentiable. `log1p(y)` for
/// `y < 1e-3` is its series `y - y^2/2 + y^3/3` (f32's `ln(1 + y)` loses y's digits there and
/// rounds to 0 below 6e-8, i.e. past a logit of ~16.6). The CPU's fused scorer
/// ([`memmamba_kernels::infer::note_log_scores`]) computes the same expression, so that
/// training and streaming rank notes alike.
pub fn ln_sigmoid(x: &Tensor) -> Result<Tensor> {
    let y = x.abs()?.neg()?.exp()?;
    let series = (&y * ((&y * y.affine(1.0 / 3.0, -0.5)?)? + 1.0)?)?;
    let direct = (&y + 1.0)?.log()?;
    let log1p = y.lt(1e-3)?.where_cond(&series, &direct)?;
    x.minimum(0.0)? - log1p
}
