//! Fused kernels for the MemMamba mixer.
//!
//! The selective scan and the causal depthwise conv cannot be written as a few large tensor ops:
//! as per-timestep candle ops they are launch-bound. This crate gives them as fused candle ops
//! with a CPU loop (candle custom ops computed in f32, with fused CPU backward passes so that
//! training can backpropagate through them), and keeps an unfused [`reference`] implementation
//! made of plain tensor ops as the oracle the fused ones are tested against.
//!
//! Shapes (B batch, L time, D channels = d_inner, N = d_state, K = d_conv):
//! - `selective_scan(x, dt, a, b, c, h0)`: x, dt (B, L, D); a (D, N); b, c (B, L, N);
//!   h0 (B, D, N) or None for zeros. Returns (y (B, L, D), h_last (B, D, N)) with
//!   `h_t = exp(dt_t * a) * h_{t-1} + dt_t * b_t * x_t`, `y_t = <h_t, c_t>`.
//! - `causal_conv1d(x, w, bias, prev)`: x (B, L, D); w (D, K); bias (D); prev (B, D, K-1), the
//!   K-1 inputs before x[0] (oldest first), or None for zeros. Returns (y (B, L, D), next prev
//!   (B, D, K-1)) with `y_t[d] = bias[d] + sum_k w[d, k] * x_{t-K+1+k}[d]`, no activation.

mod cpu;
pub mod reference;

pub use cpu::{causal_conv1d, selective_scan};
