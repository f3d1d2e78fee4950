//! Reading the pool (MODEL.md sections 3.4 to 3.6): multi-head attention of tokens over notes,
//! with `ln s` added to each note's logit, and the sigmoid gate that scales what was read.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{linear, linear_no_bias, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Added to the logit of a note a token may not see; its softmax weight underflows to 0.
pub const MASKED: f32 = -1e9;

/// Whether a note write, read or gate over `x` takes the fused inference path of
/// [`memmamba_kernels::infer`]: nothing to backpropagate, and f32 on the CPU or a CUDA device.
pub(crate) fn fused(x: &Tensor, differentiable: bool) -> bool {
    !differentiable && (x.device().is_cpu() || x.device().is_cuda()) && x.dtype() == DType::F32
}

/// Multi-head attention from the residual stream over notes: `W_q` (d -> d_note), `W_k`, `W_v`
/// (d_note -> d_note), `W_o` (d_note -> d), all without bias, H heads of `d_note / H`.
///
/// Weights: `w_q.weight`, `w_k.weight`, `w_v.weight`, `w_o.weight`.
#[derive(Debug, Clone)]
pub struct NoteAttention {
    w_q: Linear,
    w_k: Linear,
    w_v: Linear,
    w_o: Linear,
    heads: usize,
}

impl NoteAttention {
    /// Loads (or, from a fresh VarMap, initialises) the module's weights.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, n) = (cfg.d_model, cfg.d_note);
        Ok(Self {
            w_q: linear_no_bias(d, n, vb.pp("w_q"))?,
            w_k: linear_no_bias(n, n, vb.pp("w_k"))?,
            w_v: linear_no_bias(n, n, vb.pp("w_v"))?,
            w_o: linear_no_bias(n, d, vb.pp("w_o"))?,
            heads: cfg.heads,
        })
    }

    /// Keys and values of `notes` (B, V, d_note), as this module reads them.
    pub fn project(&self, notes: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.w_k.forward(notes)?, self.w_v.forward(notes)?))
    }

    /// Attends from `u` (B, S, d) over notes given by their keys, values and log-scores side by
    /// side in `notes` (B, V, 2 d_note + 1). `visible` (B, S, V) is 1 where token s may see
    /// note v and 0 elsewhere; a token that sees no note reads zeros. Returns the read `c = W_o attn`
    /// (B, S, d) and, with `want_weights`, the attention weights (B, H, S, V).
    ///
    /// With `differentiable` off, the attention runs as one fused loop on the CPU or one kernel
    /// on a GPU ([`memmamba_kernels::infer::note_attention`]); otherwise as candle ops.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        u: &Tensor,
        notes: &Tensor,
        visible: &Tensor,
        differentiable: bool,
        want_weights: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let q = self.w_q.forward(u)?;
        if fused(u, differentiable) {
            let (read, weights) = memmamba_kernels::infer::note_attention(
                &q,
                notes,
                visible,
                self.heads,
                want_weights,
            )?;
            return Ok((self.w_o.forward(&read)?, weights));
        }
        let (b, s, _) = u.dims3()?;
        let (v_len, width) = (notes.dim(1)?, notes.dim(2)?);
        let n = (width - 1) / 2;
        let keys = notes.narrow(2, 0, n)?.contiguous()?;
        let values = notes.narrow(2, n, n)?.contiguous()?;
        let log_scores = notes.narrow(2, 2 * n, 1)?.squeeze(2)?;
        let (h, dh) = (self.heads, n / self.heads);
        let heads = |t: &Tensor, len: usize| -> Result<Tensor> {
            t.reshape((b, len, h, dh))?.transpose(1, 2)?.contiguous()
        };
        let q = heads(&(q / (dh as f64).sqrt())?, s)?;
        let k = heads(&keys, v_len)?;
        let v = heads(&values, v_len)?;
        // 0 for a visible note, MASKED for the others; a token that sees none reads zeros.
        let mask_bias = ((visible - 1.0)? * f64::from(-MASKED))?;
        let seen = visible.max(D::Minus1)?;
        let bias = mask_bias
            .broadcast_add(&log_scores.unsqueeze(1)?)?
            .unsqueeze(1)?;
        let logits = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
        let weights = if differentiable {
            candle_nn::ops::softmax(&logits, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&logits)?
        };
        let weights = weights.broadcast_mul(&seen.reshape((b, 1, s, 1))?)?;
        let read = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, s, n))?;
        Ok((self.w_o.forward(&read)?, want_weights.then_some(weights)))
    }
}

/// How a gate is applied (MODEL.md section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gating {
    /// Training: the read is always scaled by the gate `g`.
    Soft,
    /// Inference: a token whose gate is below `tau2` skips the read; otherwise it is scaled by `g`.
    Sparse,
}

/// `g = sigmoid(W_g [o; c])` (2d -> 1, with bias). Weights: `weight` (1, 2d), `bias` (1).
#[derive(Debug, Clone)]
pub struct Gate {
    w_g: Linear,
}

impl Gate {
    /// Loads (or, from a fresh VarMap, initialises) the gate's weights.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            w_g: linear(2 * cfg.d_model, 1, vb)?,
        })
    }

    /// Returns `acc + g * c` (B, S, d) for the mixer output `o` and the read `c`, and how many
    /// of the B * S tokens skipped the read (`g < tau2`, under [`Gating::Sparse`]; 0 under
    /// [`Gating::Soft`]) as a u32 tensor (1) on the device, left there until someone reads it.
    ///
    /// With `differentiable` off, this is one fused pass on the CPU or one kernel on a GPU
    /// ([`memmamba_kernels::infer::gate_add`]); otherwise candle ops.
    pub fn add(
        &self,
        acc: &Tensor,
        o: &Tensor,
        c: &Tensor,
        gating: Gating,
        tau2: f64,
        differentiable: bool,
    ) -> Result<(Tensor, Tensor)> {
        if fused(o, differentiable) {
            let tau2 = (gating == Gating::Sparse).then_some(tau2 as f32);
            let bias = self.w_g.bias();
            return memmamba_kernels::infer::gate_add(acc, o, c, self.w_g.weight(), bias, tau2);
        }
        // W_g [o; c] as the two halves of W_g applied to o and to c: concatenating o and c
        // was a copy of both, a third of the gate's time on the CPU.
        let d = o.dim(D::Minus1)?;
        let w = self.w_g.weight();
        let half = |x: &Tensor, at: usize| x.broadcast_matmul(&w.narrow(1, at, d)?.t()?);
        let logit = (half(o, 0)? + half(&c.contiguous()?, d)?)?;
        let logit = match self.w_g.bias() {
            Some(bias) => logit.broadcast_add(bias)?,
            None => logit,
        };
        let g = candle_nn::ops::sigmoid(&logit)?;
        match gating {
            Gating::Soft => Ok((
                (acc + c.broadcast_mul(&g)?)?,
                Tensor::zeros(1, DType::U32, o.device())?,
            )),
            Gating::Sparse => {
                let keep = g.ge(tau2)?.to_dtype(DType::F32)?;
                let skipped = (1.0 - &keep)?.sum_all()?.to_dtype(DType::U32)?.reshape(1)?;
                Ok(((acc + c.broadcast_mul(&(g * keep)?)?)?, skipped))
            }
        }
    }
}
