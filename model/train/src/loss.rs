//! The training loss: cross-entropy of each next token, weighted per target, and the
//! divergence from a teacher's predictions.

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

/// The sum, over the targets that have a loss weight, of `KL(teacher || model)` between the
/// next-token distributions of the teacher's logits (taken as constants) and the model's, all
/// (B, L, V), with `weights` (B, L) f32.
pub fn divergence_sum(logits: &Tensor, teacher: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let log_t = candle_nn::ops::log_softmax(&teacher.to_dtype(DType::F32)?.detach(), D::Minus1)?;
    let per_target = (log_t.exp()? * (&log_t - log_p)?)?.sum(D::Minus1)?;
    let distilled = weights.gt(0.0)?.to_dtype(DType::F32)?;
    (per_target * distilled)?.sum_all()
}
