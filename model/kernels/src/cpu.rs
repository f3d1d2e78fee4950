//! Fused CPU implementations as candle custom ops (f32), with fused CPU backward passes.
//!
//! Both ops run one rayon task per (batch, block of channels) and walk time sequentially. The
//! scan keeps the state `h` of its block in a small local buffer; the conv reads its K-tap window
//! straight from `prev` and `x`. Inputs are packed to fit [`CustomOp3`]'s three arguments, and
//! the output packs `y` followed by the final state into one flat f32 buffer that the wrappers
//! split with `narrow`.
//!
//! The backward passes (`bwd`) read the packed arguments and the gradient of the packed output as
//! host f32 data, compute the gradients of the packed arguments with plain loops (the scan
//! recomputes its states per channel), and return them as tensors on the arguments' device.

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

    fn bwd(
        &self,
        xdt: &Tensor,
        ah: &Tensor,
        bc: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, batch, len, dim) = xdt.dims4()?;
        let n = ah.dim(2)?;
        let (xdt_v, ah_v, bc_v, g) = (
            host_f32(xdt)?,
            host_f32(ah)?,
            host_f32(bc)?,
            host_f32(grad_res)?,
        );
        let (x, dt) = xdt_v.split_at(batch * len * dim);
        let (a, h0) = ah_v.split_at(dim * n);
        let (gy, gh_last) = g.split_at(batch * len * dim);
        let blocks = dim.div_ceil(CHANNEL_BLOCK);

        // One task per (batch, channel block): gradients of x and dt (time-major, len * cb), of
        // a and h0 (cb * n), and this block's partial gradient of bc (len * 2n).
        let results: Vec<ScanBlockGrads> = (0..batch * blocks)
            .into_par_iter()
            .map(|task| {
                let (b, d0) = (task / blocks, (task % blocks) * CHANNEL_BLOCK);
                let cb = CHANNEL_BLOCK.min(dim - d0);
                let mut out = ScanBlockGrads {
                    gx: vec![0f32; len * cb],
                    gdt: vec![0f32; len * cb],
                    ga: vec![0f32; cb * n],
                    gh0: vec![0f32; cb * n],
                    gbc: vec![0f32; len * 2 * n],
                };
                // States h_0 .. h_len of one channel, h_0 being the initial state.
                let mut hs = vec![0f32; (len + 1) * n];
                let mut dh = vec![0f32; n];
                for j in 0..cb {
                    let d = d0 + j;
                    let a_d = &a[d * n..(d + 1) * n];
                    let h_at = (b * dim + d) * n;
                    hs[..n].copy_from_slice(&h0[h_at..h_at + n]);
                    for t in 0..len {
                        let row = (b * len + t) * dim + d;
                        let (dt_v, u) = (dt[row], dt[row] * x[row]);
                        let b_t = &bc_v[(b * len + t) * 2 * n..(b * len + t) * 2 * n + n];
                        let (done, rest) = hs.split_at_mut((t + 1) * n);
                        let h_prev = &done[t * n..];
                        for i in 0..n {
                            rest[i] = (dt_v * a_d[i]).exp() * h_prev[i] + u * b_t[i];
                        }
                    }
                    dh.copy_from_slice(&gh_last[h_at..h_at + n]);
                    for t in (0..len).rev() {
                        let row = (b * len + t) * dim + d;
                        let (x_v, dt_v, gy_v) = (x[row], dt[row], gy[row]);
                        let u = dt_v * x_v;
                        let at = (b * len + t) * 2 * n;
                        let (b_t, c_t) = bc_v[at..at + 2 * n].split_at(n);
                        let (gb_t, gc_t) = out.gbc[t * 2 * n..(t + 1) * 2 * n].split_at_mut(n);
                        let h_t = &hs[(t + 1) * n..(t + 2) * n];
                        let h_prev = &hs[t * n..(t + 1) * n];
                        let ga_j = &mut out.ga[j * n..(j + 1) * n];
                        let (mut gu, mut gdt) = (0f32, 0f32);
                        for i in 0..n {
                            gc_t[i] += gy_v * h_t[i];
                            let dh_i = dh[i] + gy_v * c_t[i];
                            gb_t[i] += dh_i * u;
                            gu += dh_i * b_t[i];
                            let e = (dt_v * a_d[i]).exp();
                            let ge = dh_i * h_prev[i] * e;
                            gdt += ge * a_d[i];
                            ga_j[i] += ge * dt_v;
                            dh[i] = dh_i * e;
                        }
                        out.gx[t * cb + j] = gu * dt_v;
                        out.gdt[t * cb + j] = gdt + gu * x_v;
                    }
                    out.gh0[j * n..(j + 1) * n].copy_from_slice(&dh);
                }
                out
            })
            .collect();

        let mut gxdt = vec![0f32; 2 * batch * len * dim];
        let mut gah = vec![0f32; (batch + 1) * dim * n];
        let mut gbc = vec![0f32; batch * len * 2 * n];
        let (gx, gdt) = gxdt.split_at_mut(batch * len * dim);
        let (ga, gh0) = gah.split_at_mut(dim * n);
        for (task, r) in results.iter().enumerate() {
            let (b, d0) = (task / blocks, (task % blocks) * CHANNEL_BLOCK);
            let cb = CHANNEL_BLOCK.min(dim - d0);
            for t in 0..len {
                let row = (b * len + t) * dim + d0;
                gx[row..row + cb].copy_from_slice(&r.gx[t * cb..(t + 1) * cb]);
                gdt[row..row + cb].copy_from_slice(&r.gdt[t * cb..(t + 1) * cb]);
            }
            for (acc, v) in ga[d0 * n..(d0 + cb) * n].iter_mut().zip(&r.ga) {
                *acc += v;
            }
            let at = (b * dim + d0) * n;
            gh0[at..at + cb * n].copy_from_slice(&r.gh0);
            let bc_b = &mut gbc[b * len * 2 * n..(b + 1) * len * 2 * n];
            for (acc, v) in bc_b.iter_mut().zip(&r.gbc) {
                *acc += v;
            }
        }
        let dev = xdt.device();
        Ok((
            Some(Tensor::from_vec(gxdt, xdt.shape(), dev)?),
            Some(Tensor::from_vec(gah, ah.shape(), dev)?),
            Some(Tensor::from_vec(gbc, bc.shape(), dev)?),
        ))
    }
}

/// Gradients computed by one (batch, channel block) task of the scan backward.
struct ScanBlockGrads {
    gx: Vec<f32>,
    gdt: Vec<f32>,
    ga: Vec<f32>,
    gh0: Vec<f32>,
    gbc: Vec<f32>,
}

/// The data of a tensor as a host f32 vector (row-major).
fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
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

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        prev: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, len, dim) = x.dims3()?;
        let kp1 = wb.dim(1)?;
        let km1 = kp1 - 2;
        let (x_v, wb_v, prev_v, g) = (
            host_f32(x)?,
            host_f32(wb)?,
            host_f32(prev)?,
            host_f32(grad_res)?,
        );
        let (gy, g_next) = g.split_at(batch * len * dim);
        let mut gx = vec![0f32; batch * len * dim];
        let mut gwb = vec![0f32; dim * kp1];
        let mut gprev = vec![0f32; batch * dim * km1];
        // Gradient of one channel's padded input prev ++ x, reused across (batch, channel).
        let mut gin = vec![0f32; len + km1];
        for b in 0..batch {
            for d in 0..dim {
                let s_at = (b * dim + d) * km1;
                let input = |p: usize| {
                    if p < km1 {
                        prev_v[s_at + p]
                    } else {
                        x_v[(b * len + p - km1) * dim + d]
                    }
                };
                let w_d = &wb_v[d * kp1..(d + 1) * kp1];
                let gw_d = &mut gwb[d * kp1..(d + 1) * kp1];
                gin.fill(0.0);
                // The next prev is the last km1 inputs of the padded sequence.
                for m in 0..km1 {
                    gin[len + m] += g_next[s_at + m];
                }
                for t in 0..len {
                    let gy_v = gy[(b * len + t) * dim + d];
                    gw_d[km1 + 1] += gy_v;
                    for k in 0..=km1 {
                        gw_d[k] += gy_v * input(t + k);
                        gin[t + k] += gy_v * w_d[k];
                    }
                }
                gprev[s_at..s_at + km1].copy_from_slice(&gin[..km1]);
                for t in 0..len {
                    gx[(b * len + t) * dim + d] = gin[km1 + t];
                }
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), dev)?),
            Some(Tensor::from_vec(gwb, wb.shape(), dev)?),
            Some(Tensor::from_vec(gprev, prev.shape(), dev)?),
        ))
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
    let out = xdt.apply_op3(&ah, &bc, SelectiveScanOp)?;
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
    let out = f32_contiguous(x)?.apply_op3(&wb, &prev, CausalConv1dOp)?;
    split_packed(&out, dims, k - 1, x.dtype())
}
