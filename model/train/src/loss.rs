//! The training loss: cross-entropy of each next token, weighted per target, and the
//! divergence from a teacher's predictions.

use candle_core::{DType, Result, Tensor, D};

/// The next-token log-probabilities (f32) of `logits` (.., V): computed once per sequence and
/// shared by the cross-entropy and the divergence, each of which would otherwise keep its own
/// (B, L, V) copy for the backward pass.
pub fn log_probs(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)
}

/// `sum(w * nll) / sum(w)` over all targets, from the model's [`log_probs`] (B, L, V),
/// `targets` (B, L) u32 and `weights` (B, L) f32; zero when every weight is (a sequence that
/// only feeds the memory for a later one).
pub fn weighted_cross_entropy(
    log_probs: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
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
/// next-token distributions of the teacher's [`log_probs`] (taken as constants) and the
/// model's, both (B, L, V), with `weights` (B, L) f32.
pub fn divergence_sum(log_probs: &Tensor, teacher: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let log_t = teacher.detach();
    let per_target = (log_t.exp()? * (&log_t - log_probs)?)?.sum(D::Minus1)?;
    let distilled = weights.gt(0.0)?.to_dtype(DType::F32)?;
    (per_target * distilled)?.sum_all()
}
