//! Fused kernels for the MemMamba mixer.
//!
//! The selective scan and the causal depthwise conv cannot be written as a few large tensor ops:
//! as per-timestep candle ops they are launch-bound. This crate gives them as fused candle ops
//! ([`ops`]) with forward and backward passes: a CPU loop (in f32), and with the `cuda` feature
//! CUDA kernels (f32, bf16 or f16 inputs, f32 arithmetic) for tensors on a CUDA device. It keeps
//! an unfused [`reference`] implementation made of plain tensor ops as the oracle the fused ones
//! are tested against. For inference on the CPU, [`infer`] also folds the mixer's elementwise
//! steps around the conv and the scan (SiLU, softplus of dt, the D skip, the gate) into their
//! loops.
//!
//! Shapes (B batch, L time, D channels = d_inner, N = d_state, K = d_conv):
//! - `selective_scan(x, dt, a, b, c, h0)`: x, dt (B, L, D); a (D, N); b, c (B, L, N);
//!   h0 (B, D, N) or None for zeros. Returns (y (B, L, D), h_last (B, D, N)) with
//!   `h_t = exp(dt_t * a) * h_{t-1} + dt_t * b_t * x_t`, `y_t = <h_t, c_t>`.
//! - `causal_conv1d(x, w, bias, prev)`: x (B, L, D); w (D, K); bias (D); prev (B, D, K-1), the
//!   K-1 inputs before x[0] (oldest first), or None for zeros. Returns (y (B, L, D), next prev
//!   (B, D, K-1)) with `y_t[d] = bias[d] + sum_k w[d, k] * x_{t-K+1+k}[d]`, no activation.
//! - `gather_rows(table, index)`: rows `index` (M, u32) of `table` (R, W), as `index_select`,
//!   with a backward that scatters the rows' gradients back in one pass (the note pool's
//!   gathers in training).

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod infer;
pub mod ops;
pub mod reference;
#[cfg(feature = "cuda")]
mod staging;
pub mod transfer;

pub use ops::{causal_conv1d, gather_rows, selective_scan};
