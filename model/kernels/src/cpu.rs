//! Fused CPU implementations as candle custom ops (forward only, f32).
//!
//! Both ops run one rayon task per (batch, block of channels) and walk time sequentially. The
//! scan keeps the state `h` of its block in a small local buffer; the conv reads its K-tap window
//! straight from `prev` and `x`. Inputs are packed to fit [`CustomOp3`]'s three arguments, and
//! the output packs `y` followed by the final state into one flat f32 buffer that the wrappers
//! split with `narrow`.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Channels handled by one task: consecutive channels share cache lines of `x`, `dt` and `y`.
const CHANNEL_BLOCK: usize = 16;

/// The contiguous f32 data of one op argument, or a candle error naming the op.
fn f32_data<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        bail!("{op}: expected f32 input, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

/// Runs `block(b, d0, cb)` for every batch `b` and block of `cb` channels starting at `d0`, in
/// parallel. Each call returns its outputs in time-major order (`len * cb`) and its final state
/// (`cb * state`). Returns them packed as y (B, L, D) followed by state (B, D, state).
fn run_channel_blocks<F>(batch: usize, len: usize, dim: usize, state: usize, block: F) -> Vec<f32>
where
    F: Fn(usize, usize, usize) -> (Vec<f32>, Vec<f32>) + Sync,
{
    let blocks = dim.div_ceil(CHANNEL_BLOCK);
    let results: Vec<(Vec<f32>, Vec<f32>)> = (0..batch * blocks)
        .into_par_iter()
        .map(|task| {
            let (b, d0) = (task / blocks, (task % blocks) * CHANNEL_BLOCK);
            block(b, d0, CHANNEL_BLOCK.min(dim - d0))
        })
        .collect();
    let y_len = batch * len * dim;
    let mut out = vec![0f32; y_len + batch * dim * state];
    let (y_out, state_out) = out.split_at_mut(y_len);
    for (task, (y, s)) in results.iter().enumerate() {
        let (b, d0) = (task / blocks, (task % blocks) * CHANNEL_BLOCK);
        let cb = CHANNEL_BLOCK.min(dim - d0);
        for t in 0..len {
            let row = (b * len + t) * dim + d0;
            y_out[row..row + cb].copy_from_slice(&y[t * cb..(t + 1) * cb]);
        }
        let at = (b * dim + d0) * state;
        state_out[at..at + cb * state].copy_from_slice(s);
    }
    out
}

/// Selective scan op. Arguments: `xdt` (2, B, L, D) = stack of x and dt; `ah` (1 + B, D, N) =
/// `a` followed by h0; `bc` (B, L, 2N) = b and c concatenated. Output: flat y then h_last.
struct SelectiveScanOp;

impl CustomOp3 for SelectiveScanOp {
    fn name(&self) -> &'static str {
        "selective-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (two, batch, len, dim) = l1.shape().dims4()?;
        let (bp1, d2, n) = l2.shape().dims3()?;
        let (b3, l3_len, n2) = l3.shape().dims3()?;
        if two != 2 || bp1 != batch + 1 || d2 != dim || b3 != batch || l3_len != len || n2 != 2 * n
        {
            bail!(
                "{op}: inconsistent packed shapes {:?} {:?} {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        let xdt = f32_data(op, s1, l1)?;
        let ah = f32_data(op, s2, l2)?;
        let bc = f32_data(op, s3, l3)?;
        let (x, dt) = xdt.split_at(batch * len * dim);
        let (a, h0) = ah.split_at(dim * n);

        let out = run_channel_blocks(batch, len, dim, n, |b, d0, cb| {
            let h_at = (b * dim + d0) * n;
            let mut h = h0[h_at..h_at + cb * n].to_vec();
            let a = &a[d0 * n..(d0 + cb) * n];
            let mut y = vec![0f32; len * cb];
            for t in 0..len {
                let row = (b * len + t) * dim + d0;
                let bc_t = &bc[(b * len + t) * 2 * n..(b * len + t + 1) * 2 * n];
                let (b_t, c_t) = bc_t.split_at(n);
                for j in 0..cb {
                    let dt_v = dt[row + j];
                    let dx = dt_v * x[row + j];
                    let h_j = &mut h[j * n..(j + 1) * n];
                    let a_j = &a[j * n..(j + 1) * n];
                    let mut acc = 0f32;
                    for i in 0..n {
                        let v = (dt_v * a_j[i]).exp() * h_j[i] + dx * b_t[i];
                        h_j[i] = v;
                        acc += v * c_t[i];
                    }
                    y[t * cb + j] = acc;
                }
            }
            (y, h)
        });
        let shape = Shape::from(out.len());
        Ok((CpuStorage::F32(out), shape))
    }
}

/// Causal depthwise conv op. Arguments: `x` (B, L, D); `wb` (D, K + 1) = w with the bias as last
/// column; `prev` (B, D, K - 1). Output: flat y then next prev.
struct CausalConv1dOp;

impl CustomOp3 for CausalConv1dOp {
    fn name(&self) -> &'static str {
        "causal-conv1d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (batch, len, dim) = l1.shape().dims3()?;
        let (d2, kp1) = l2.shape().dims2()?;
        let (b3, d3, km1) = l3.shape().dims3()?;
        if d2 != dim || kp1 < 2 || b3 != batch || d3 != dim || km1 + 2 != kp1 {
            bail!(
                "{op}: inconsistent packed shapes {:?} {:?} {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        let x = f32_data(op, s1, l1)?;
        let wb = f32_data(op, s2, l2)?;
        let prev = f32_data(op, s3, l3)?;

        let out = run_channel_blocks(batch, len, dim, km1, |b, d0, cb| {
            let s_at = (b * dim + d0) * km1;
            // Input of channel j at time p of the padded sequence prev ++ x (oldest first).
            let input = |p: usize, j: usize| {
                if p < km1 {
                    prev[s_at + j * km1 + p]
                } else {
                    x[(b * len + p - km1) * dim + d0 + j]
                }
            };
            let mut y = vec![0f32; len * cb];
            for t in 0..len {
                for j in 0..cb {
                    let w_j = &wb[(d0 + j) * kp1..(d0 + j + 1) * kp1];
                    let mut acc = w_j[km1 + 1];
                    for (k, w) in w_j[..=km1].iter().enumerate() {
                        acc += w * input(t + k, j);
                    }
                    y[t * cb + j] = acc;
                }
            }
            let next_prev = (0..cb)
                .flat_map(|j| (len..len + km1).map(move |p| (p, j)))
                .map(|(p, j)| input(p, j))
                .collect();
            (y, next_prev)
        });
        let shape = Shape::from(out.len());
        Ok((CpuStorage::F32(out), shape))
    }
}

fn f32_contiguous(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)?.contiguous()
}

/// Splits a packed op output into y (B, L, D) and state (B, D, S), both in `dtype`.
fn split_packed(
    out: &Tensor,
    (batch, len, dim): (usize, usize, usize),
    state: usize,
    dtype: DType,
) -> Result<(Tensor, Tensor)> {
    let y_len = batch * len * dim;
    let y = out.narrow(0, 0, y_len)?.reshape((batch, len, dim))?;
    let s = out
        .narrow(0, y_len, batch * dim * state)?
        .reshape((batch, dim, state))?;
    Ok((y.to_dtype(dtype)?, s.to_dtype(dtype)?))
}

/// Fused selective scan; see the crate docs for shapes. Computes in f32 and returns tensors of
/// `x`'s dtype.
pub fn selective_scan(
    x: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    h0: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let dims = x.dims3()?;
    let (batch, _, dim) = dims;
    let n = a.dim(1)?;
    let xdt = Tensor::stack(&[f32_contiguous(x)?, f32_contiguous(dt)?], 0)?;
    let h0 = match h0 {
        Some(h0) => f32_contiguous(h0)?,
        None => Tensor::zeros((batch, dim, n), DType::F32, x.device())?,
    };
    let ah = Tensor::cat(&[&f32_contiguous(a)?.unsqueeze(0)?, &h0], 0)?;
    let bc = Tensor::cat(&[&f32_contiguous(b)?, &f32_contiguous(c)?], 2)?;
    let out = xdt.apply_op3_no_bwd(&ah, &bc, &SelectiveScanOp)?;
    split_packed(&out, dims, n, x.dtype())
}

/// Fused causal depthwise conv1d; see the crate docs for shapes. Computes in f32 and returns
/// tensors of `x`'s dtype.
pub fn causal_conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    prev: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let dims = x.dims3()?;
    let (batch, _, dim) = dims;
    let k = w.dim(1)?;
    if k == 0 {
        bail!("causal_conv1d: kernel width must be at least 1")
    }
    let wb = Tensor::cat(
        &[f32_contiguous(w)?, f32_contiguous(bias)?.reshape((dim, 1))?],
        1,
    )?;
    let prev = match prev {
        Some(p) => f32_contiguous(p)?,
        None => Tensor::zeros((batch, dim, k - 1), DType::F32, x.device())?,
    };
    let out = f32_contiguous(x)?.apply_op3_no_bwd(&wb, &prev, &CausalConv1dOp)?;
    split_packed(&out, dims, k - 1, x.dtype())
}
