//! RMSNorm, written with plain tensor ops so that it backpropagates (candle's fused
//! `rms_norm` has no backward pass, so it serves only where no gradient can flow).

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

/// `y = x / sqrt(mean(x^2) + eps) * weight` over the last dimension, computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` (size) from `vb`; a fresh VarMap initialises it to ones.
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        Ok(Self { weight, eps })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.track_op() && !self.weight.track_op() && x.dtype() == self.weight.dtype() {
            // Nothing to backpropagate: candle's fused kernel, one pass instead of six.
            return candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32);
        }
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(mean_sq + self.eps)?.sqrt()?)?;
        x.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}
