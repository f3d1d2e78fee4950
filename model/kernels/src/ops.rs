//! The fused ops as candle [`CustomOp3`]s, with their packed arguments, for callers that want
//! the ops themselves (benchmarks, or a caller that packs once): [`selective_scan`] and
//! [`causal_conv1d`] are `*_args` + `apply_op3` + [`split_packed`].
//!
//! Packing (B batch, L time, D channels, N states, K taps):
//! - [`SelectiveScanOp`]: `x`, `dt` (B, L, D) of one float dtype; `rest` = flat f32
//!   [a (D, N) | h0 (B, D, N) | b (B, L, N) | c (B, L, N)]. Output: flat [y (B, L, D) |
//!   h_last (B, D, N)] of `x`'s dtype.
//! - [`CausalConv1dOp`]: `x` (B, L, D); `wb` (D, K + 1) f32 = taps with the bias as last column;
//!   `prev` (B, D, K - 1) f32. Output: flat [y (B, L, D) | next prev (B, D, K - 1)] of `x`'s
//!   dtype.
//!
//! - [`GatherRowsOp`]: `table` (R, W), `index` (M) u32. Output: the rows (M, W).
//!
//! On the CPU the big inputs are f32 and the fused loops of [`crate::cpu`] run; on a CUDA device
//! they may be f32, bf16 or f16 (arithmetic in f32) and the kernels of `kernels/*.cu` run, the
//! backward passes included. The small arguments are always f32.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::cpu::{self, Dims, Rows};

/// Largest d_state whose backward runs on the GPU; a larger one computes its backward on the
/// host (the forward runs on the GPU up to 64).
pub const CUDA_BWD_MAX_STATE: usize = 16;

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

/// The data of a tensor as a host f32 vector (row-major).
pub(crate) fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
}

/// The dtype the ops compute `x` in on its device: f32 on the CPU, f32/bf16/f16 kept on CUDA.
fn op_dtype(x: &Tensor) -> DType {
    match x.dtype() {
        d @ (DType::F32 | DType::BF16 | DType::F16) if x.device().is_cuda() => d,
        _ => DType::F32,
    }
}

fn f32_flat(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)?.flatten_all()
}

/// Selective scan with d_state `n`; see the module docs for its packed arguments.
#[derive(Debug, Clone, Copy)]
pub struct SelectiveScanOp {
    pub n: usize,
}

impl SelectiveScanOp {
    /// (B, L, D) from the argument layouts, after checking that they fit together.
    fn dims(&self, l1: &Layout, l2: &Layout, l3: &Layout) -> Result<Dims> {
        let (batch, len, dim) = l1.shape().dims3()?;
        let n = self.n;
        let rest = dim * n + batch * dim * n + 2 * batch * len * n;
        if l2.shape() != l1.shape() || l3.shape().dims() != [rest] {
            bail!(
                "selective-scan: inconsistent packed shapes {:?} {:?} {:?} for n = {n}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        Ok((batch, len, dim))
    }
}

/// Packs the arguments of [`SelectiveScanOp`]: (x, dt, rest) in the op's dtype for `x`'s device.
pub fn scan_args(
    x: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    h0: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (batch, _, dim) = x.dims3()?;
    let n = a.dim(1)?;
    let dtype = op_dtype(x);
    let h0 = match h0 {
        Some(h0) => f32_flat(h0)?,
        None => Tensor::zeros(batch * dim * n, DType::F32, x.device())?,
    };
    let rest = Tensor::cat(&[f32_flat(a)?, h0, f32_flat(b)?, f32_flat(c)?], 0)?;
    Ok((
        x.to_dtype(dtype)?.contiguous()?,
        dt.to_dtype(dtype)?.contiguous()?,
        rest,
    ))
}

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
        let dims = self.dims(l1, l2, l3)?;
        let (x, dt, rest) = (
            f32_data(op, s1, l1)?,
            f32_data(op, s2, l2)?,
            f32_data(op, s3, l3)?,
        );
        let (a, h0, b, c) = cpu::split_rest(rest, dims, self.n);
        let (_, _, dim) = dims;
        let out = cpu::scan_fwd(&cpu::ScanInputs {
            x: Rows {
                data: x,
                stride: dim,
            },
            dt: Rows {
                data: dt,
                stride: dim,
            },
            a,
            h0,
            b,
            c,
            dims,
            n: self.n,
            fusion: None,
        });
        let shape = Shape::from(out.len());
        Ok((CpuStorage::F32(out), shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let dims = self.dims(l1, l2, l3)?;
        let out = crate::cuda::scan_fwd((s1, l1), (s2, l2), (s3, l3), dims, self.n)?;
        let (batch, len, dim) = dims;
        Ok((out, Shape::from(batch * len * dim + batch * dim * self.n)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        dt: &Tensor,
        rest: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() && self.n <= CUDA_BWD_MAX_STATE {
            let (gx, gdt, grest) = crate::cuda::scan_bwd(x, dt, rest, grad_res, self.n)?;
            return Ok((Some(gx), Some(gdt), Some(grest)));
        }
        let dims = x.dims3()?;
        let (gx, gdt, grest) = cpu::scan_bwd(
            &host_f32(x)?,
            &host_f32(dt)?,
            &host_f32(rest)?,
            &host_f32(grad_res)?,
            dims,
            self.n,
        );
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), dev)?.to_dtype(x.dtype())?),
            Some(Tensor::from_vec(gdt, dt.shape(), dev)?.to_dtype(dt.dtype())?),
            Some(Tensor::from_vec(grest, rest.shape(), dev)?),
        ))
    }
}

/// Causal depthwise conv1d with K taps; see the module docs for its packed arguments.
#[derive(Debug, Clone, Copy)]
pub struct CausalConv1dOp {
    pub k: usize,
}

impl CausalConv1dOp {
    /// (B, L, D) from the argument layouts, after checking that they fit together.
    fn dims(&self, l1: &Layout, l2: &Layout, l3: &Layout) -> Result<Dims> {
        let (batch, len, dim) = l1.shape().dims3()?;
        let k = self.k;
        if k == 0 || l2.shape().dims() != [dim, k + 1] || l3.shape().dims() != [batch, dim, k - 1] {
            bail!(
                "causal-conv1d: inconsistent packed shapes {:?} {:?} {:?} for k = {k}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        Ok((batch, len, dim))
    }
}

/// Packs the arguments of [`CausalConv1dOp`]: (x, wb, prev) in the op's dtype for `x`'s device.
pub fn conv_args(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    prev: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (batch, _, dim) = x.dims3()?;
    let k = w.dim(1)?;
    if k == 0 {
        bail!("causal_conv1d: kernel width must be at least 1")
    }
    let wb = conv_wb(w, bias)?;
    let prev = match prev {
        Some(p) => p.to_dtype(DType::F32)?.contiguous()?,
        None => Tensor::zeros((batch, dim, k - 1), DType::F32, x.device())?,
    };
    Ok((x.to_dtype(op_dtype(x))?.contiguous()?, wb, prev))
}

/// The conv's taps `w` (D, K) with the bias (D) as last column: (D, K + 1) f32.
pub(crate) fn conv_wb(w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let dim = w.dim(0)?;
    Tensor::cat(
        &[
            w.to_dtype(DType::F32)?,
            bias.to_dtype(DType::F32)?.reshape((dim, 1))?,
        ],
        1,
    )
}

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
        let dims = self.dims(l1, l2, l3)?;
        let (x, wb, prev) = (
            f32_data(op, s1, l1)?,
            f32_data(op, s2, l2)?,
            f32_data(op, s3, l3)?,
        );
        let out = cpu::conv_fwd(&cpu::ConvInputs {
            x: Rows {
                data: x,
                stride: dims.2,
            },
            wb,
            prev,
            dims,
            k: self.k,
            silu: false,
        });
        let shape = Shape::from(out.len());
        Ok((CpuStorage::F32(out), shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let dims = self.dims(l1, l2, l3)?;
        let out = crate::cuda::conv_fwd((s1, l1), (s2, l2), (s3, l3), dims, self.k)?;
        let (batch, len, dim) = dims;
        Ok((
            out,
            Shape::from(batch * len * dim + batch * dim * (self.k - 1)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        prev: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, _, dim) = x.dims3()?;
        let k = self.k;
        #[cfg(feature = "cuda")]
        let (gx, grest) = if x.device().is_cuda() {
            crate::cuda::conv_bwd(x, wb, prev, grad_res, k)?
        } else {
            conv_bwd_host(x, wb, prev, grad_res, k)?
        };
        #[cfg(not(feature = "cuda"))]
        let (gx, grest) = conv_bwd_host(x, wb, prev, grad_res, k)?;
        let gwb = grest.narrow(0, 0, dim * (k + 1))?.reshape((dim, k + 1))?;
        let gprev = grest
            .narrow(0, dim * (k + 1), batch * dim * (k - 1))?
            .reshape((batch, dim, k - 1))?;
        Ok((Some(gx), Some(gwb), Some(gprev)))
    }
}

/// The conv backward on the host: the gradient of x (in x's dtype) and the flat f32 gradient of
/// [wb | prev].
fn conv_bwd_host(
    x: &Tensor,
    wb: &Tensor,
    prev: &Tensor,
    grad: &Tensor,
    k: usize,
) -> Result<(Tensor, Tensor)> {
    let (gx, grest) = cpu::conv_bwd(
        &host_f32(x)?,
        &host_f32(wb)?,
        &host_f32(prev)?,
        &host_f32(grad)?,
        x.dims3()?,
        k,
    );
    let dev = x.device();
    let len = grest.len();
    Ok((
        Tensor::from_vec(gx, x.shape(), dev)?.to_dtype(x.dtype())?,
        Tensor::from_vec(grest, len, dev)?,
    ))
}

/// Splits a packed op output into y (B, L, D) and state (B, D, S), both in `dtype`.
pub fn split_packed(
    out: &Tensor,
    (batch, len, dim): Dims,
    state: usize,
    dtype: DType,
) -> Result<(Tensor, Tensor)> {
    let y_len = batch * len * dim;
    let y = out.narrow(0, 0, y_len)?.reshape((batch, len, dim))?;
    // The state is copied out: a view would keep the whole packed buffer, y's part included,
    // alive for as long as the state lives (a read's state held 8 MiB per layer that way).
    let s = out
        .narrow(0, y_len, batch * dim * state)?
        .force_contiguous()?
        .reshape((batch, dim, state))?;
    Ok((y.to_dtype(dtype)?, s.to_dtype(dtype)?))
}

/// Fused selective scan; see the crate docs for shapes. Returns tensors of `x`'s dtype.
pub fn selective_scan(
    x: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    h0: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let dims = x.dims3()?;
    let n = a.dim(1)?;
    let (xo, dto, rest) = scan_args(x, dt, a, b, c, h0)?;
    let out = xo.apply_op3(&dto, &rest, SelectiveScanOp { n })?;
    split_packed(&out, dims, n, x.dtype())
}

/// Fused causal depthwise conv1d; see the crate docs for shapes. Returns tensors of `x`'s dtype.
pub fn causal_conv1d(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    prev: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let dims = x.dims3()?;
    let k = w.dim(1)?;
    let (xo, wb, prev) = conv_args(x, w, bias, prev)?;
    let out = xo.apply_op3(&wb, &prev, CausalConv1dOp { k })?;
    split_packed(&out, dims, k - 1, x.dtype())
}

/// Rows of `table` (R, W) picked by `index` (M) of u32: `table.index_select(index, 0)`, (M, W),
/// with a backward that adds each gathered row's gradient to the row it was read from in one
/// pass. candle's own backward of `index_select` is `index_add`, whose CUDA kernel walks all M
/// indices in one thread per column (W threads in all); multiplying by a one-hot (M, R)
/// selection instead costs M x R memory and FLOPs, which for the note pool's gathers grows with
/// the square of the sequence length.
pub fn gather_rows(table: &Tensor, index: &Tensor) -> Result<Tensor> {
    if index.dtype() != DType::U32 {
        bail!("gather-rows: expected u32 indices, got {:?}", index.dtype())
    }
    table.apply_op2(index, GatherRowsOp)
}

/// See [`gather_rows`].
#[derive(Debug, Clone, Copy)]
pub struct GatherRowsOp;

impl GatherRowsOp {
    /// (M, W) from the argument layouts, after checking their ranks.
    fn shape(&self, table: &Layout, index: &Layout) -> Result<Shape> {
        let (_, w) = table.shape().dims2()?;
        let m = index.shape().dims1()?;
        Ok(Shape::from((m, w)))
    }
}

impl CustomOp2 for GatherRowsOp {
    fn name(&self) -> &'static str {
        "gather-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((s1.index_select(s2, l1, l2, 0)?, self.shape(l1, l2)?))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((s1.index_select(s2, l1, l2, 0)?, self.shape(l1, l2)?))
    }

    fn bwd(
        &self,
        table: &Tensor,
        index: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = table.dim(0)?;
        let grad = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let index = index.contiguous()?;
        #[cfg(feature = "cuda")]
        if grad.device().is_cuda() {
            let sum = crate::cuda::scatter_add_rows(&grad, &index, rows)?;
            return Ok((Some(sum.to_dtype(table.dtype())?), None));
        }
        let (_, w) = grad.dims2()?;
        let mut sum = vec![0f32; rows * w];
        for (row, &r) in host_f32(&grad)?.chunks(w).zip(&index.to_vec1::<u32>()?) {
            // an index outside the table adds nothing, as on a GPU (the forward refused it)
            if let Some(dst) = sum.get_mut(r as usize * w..(r as usize + 1) * w) {
                dst.iter_mut().zip(row).for_each(|(d, g)| *d += g);
            }
        }
        let sum = Tensor::from_vec(sum, (rows, w), table.device())?;
        Ok((Some(sum.to_dtype(table.dtype())?), None))
    }
}
