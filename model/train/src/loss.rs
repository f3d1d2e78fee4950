//! The training loss: cross-entropy of each next token, weighted per target.

use candle_core::{DType, Result, Tensor, D};

/// `sum(w * nll) / sum(w)` over all targets, from `logits` (B, L, V), `targets` (B, L) u32
/// and `weights` (B, L) f32; zero when every weight is (a sequence that only feeds the memory
/// for a later one).
pub fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = log_probs
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?;
    let total = (picked.neg()? * weights)?.sum_all()?;
    let weight = weights.sum_all()?.to_scalar::<f32>()?;
    if weight == 0.0 {
        return Ok(total);
    }
    total / f64::from(weight)
}
