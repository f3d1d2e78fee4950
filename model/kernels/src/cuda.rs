//! CUDA launches of the kernels in `kernels/*.cu` (compiled to PTX by build.rs, embedded here),
//! on candle's own stream. Layouts and algorithms are described in the .cu files and in
//! [`crate::ops`].

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaStorageSlice, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Storage, Tensor};
use half::{bf16, f16};

use crate::cpu::Dims;
use crate::ops::CUDA_BWD_MAX_STATE;

const SCAN_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/scan.ptx"));
const CONV_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/conv.ptx"));
const GATE_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/gate.ptx"));
const ATTENTION_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/attention.ptx"));
const GATHER_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/gather.ptx"));
const SCAN_MODULE: &str = "memmamba_scan";
const CONV_MODULE: &str = "memmamba_conv";
const GATE_MODULE: &str = "memmamba_gate";
const ATTENTION_MODULE: &str = "memmamba_attention";
const GATHER_MODULE: &str = "memmamba_gather";
/// Widest head `kernels/attention.cu` holds in registers.
const ATTENTION_MAX_HEAD: usize = 64;
// Must match ATT_THREADS of attention.cu.
const ATTENTION_THREADS: usize = 128;

// Must match the #defines of scan.cu and conv.cu.
const TILE: usize = 16;
const FWD_BLOCK: usize = 128;
const BWD_CHUNK: usize = 256;
const BWD_CHANNELS: usize = 16;
const CONV_BLOCK: usize = 128;
const CONV_MAX_K: usize = 16;
/// Time steps per thread of the conv kernels.
const CONV_CHUNK: usize = 64;
/// Threads (batch x chunk x channel) the forward scan aims for, to fill the GPU at batch 1.
const FWD_THREADS: usize = 1 << 18;
/// Blocks the scan backward aims for: channel groups of a (batch, chunk) get their own blocks
/// until there are this many.
const BWD_BLOCKS: usize = 2048;
/// Most blocks summing the per-chunk parts of the gradient of a, per element.
const GA_SPLIT: usize = 64;
/// Grid y limit of a launch.
const MAX_GRID_Y: usize = 65535;

/// Element types of the big tensors, with their kernel-name suffix.
trait Elem: CudaDType + DeviceRepr {
    const NAME: &'static str;
}
impl Elem for f32 {
    const NAME: &'static str = "f32";
}
impl Elem for bf16 {
    const NAME: &'static str = "bf16";
}
impl Elem for f16 {
    const NAME: &'static str = "f16";
}

/// A storage argument with its layout.
pub type Arg<'a> = (&'a CudaStorage, &'a Layout);

/// A view of the contiguous data of an argument of element type `T`.
pub(crate) fn view<'a, T: CudaDType>((s, l): Arg<'a>, what: &str) -> Result<CudaView<'a, T>> {
    let slice = s.as_cuda_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(slice.slice(start..end)),
        None => bail!("{what}: expected a contiguous input"),
    }
}

fn grid(x: usize, y: usize, z: usize, block: usize, smem_floats: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (x as u32, y as u32, z as u32),
        block_dim: (block as u32, 1, 1),
        shared_mem_bytes: (smem_floats * 4) as u32,
    }
}

/// One thread per element of `count`, in blocks of 256.
fn flat(count: usize) -> LaunchConfig {
    grid(count.div_ceil(256), 1, 1, 256, 0)
}

fn i32s<const K: usize>(v: [usize; K]) -> Result<[i32; K]> {
    let mut out = [0i32; K];
    for (o, v) in out.iter_mut().zip(v) {
        *o = i32::try_from(v)
            .map_err(|_| candle_core::Error::Msg(format!("memmamba-kernels: {v} too large")))?;
    }
    Ok(out)
}

fn check_nonempty(what: &str, (batch, _, dim): Dims) -> Result<()> {
    if batch == 0 || dim == 0 {
        bail!("{what}: empty batch or channel dimension on CUDA")
    }
    Ok(())
}

/// Chunk length of the forward scan: enough chunks to fill the GPU, at least 32 steps each.
fn fwd_chunk(batch: usize, len: usize, dim: usize) -> usize {
    let chunks = FWD_THREADS.div_ceil((batch * dim).max(1));
    len.div_ceil(chunks).max(32).max(len.div_ceil(MAX_GRID_Y))
}

/// Chunk length of the conv kernels.
fn conv_chunk(len: usize) -> usize {
    CONV_CHUNK.max(len.div_ceil(MAX_GRID_Y))
}

/// Calls `$f::<T>($args)` for the element type of storage `$s` (f32, bf16 or f16) and wraps the
/// returned slice back into a `CudaStorageSlice`.
macro_rules! dispatch {
    ($s:expr, $what:expr, $f:ident ( $($args:expr),* )) => {
        match &$s.slice {
            CudaStorageSlice::F32(_) => CudaStorageSlice::F32($f::<f32>($($args),*)?),
            CudaStorageSlice::BF16(_) => CudaStorageSlice::BF16($f::<bf16>($($args),*)?),
            CudaStorageSlice::F16(_) => CudaStorageSlice::F16($f::<f16>($($args),*)?),
            _ => bail!("{}: expected f32, bf16 or f16 input, got {:?}", $what, $s.dtype()),
        }
    };
}

/// Forward scan; returns the packed output [y | h_last] in `x`'s element type.
pub fn scan_fwd(x: Arg, dt: Arg, rest: Arg, dims: Dims, n: usize) -> Result<CudaStorage> {
    let op = "selective-scan";
    check_nonempty(op, dims)?;
    let dev = x.0.device().clone();
    let slice = dispatch!(x.0, op, scan_fwd_t(&dev, x, dt, rest, dims, n));
    Ok(CudaStorage { slice, device: dev })
}

fn scan_maxn(n: usize) -> Result<usize> {
    Ok(match n {
        1..=16 => 16,
        17..=64 => 64,
        _ => bail!("selective-scan: d_state {n} not supported on CUDA (1..=64)"),
    })
}

fn scan_fwd_t<T: Elem>(
    dev: &CudaDevice,
    x: Arg,
    dt: Arg,
    rest: Arg,
    dims: Dims,
    n: usize,
) -> Result<CudaSlice<T>> {
    let op = "selective-scan";
    let (batch, len, dim) = dims;
    let maxn = scan_maxn(n)?;
    let (xv, dtv, rv) = (
        view::<T>(x, op)?,
        view::<T>(dt, op)?,
        view::<f32>(rest, op)?,
    );
    let chunk = fwd_chunk(batch, len, dim);
    let nch = len.div_ceil(chunk).max(1);
    let [b_, l_, d_, n_, ch_, nch_] = i32s([batch, len, dim, n, chunk, nch])?;
    // SAFETY: scan_out writes every element.
    let out = unsafe { dev.alloc::<T>(batch * len * dim + batch * dim * n)? };
    let name = format!("scan_out_{}_{maxn}", T::NAME);
    let f = dev.get_or_load_custom_func(&name, SCAN_MODULE, SCAN_PTX)?;
    let cfg = grid(dim.div_ceil(FWD_BLOCK), nch, batch, FWD_BLOCK, 2 * TILE * n);
    // With one chunk scan_out starts from h0 and ignores its `starts` argument.
    let states = if nch > 1 {
        Some(chunk_states(dev, (&xv, &dtv, &rv), dims, n, chunk, nch)?)
    } else {
        None
    };
    let mut b = f.builder();
    b.arg(&xv).arg(&dtv).arg(&rv);
    match &states {
        Some((s, _)) => b.arg(s),
        None => b.arg(&rv),
    };
    b.arg(&out);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&n_).arg(&ch_).arg(&nch_);
    // SAFETY: the arguments match scan_out's signature.
    unsafe { b.launch(cfg) }.w()?;
    Ok(out)
}

/// The state every chunk of `chunk` steps starts from (B, nch, D, N) and the chunks' sums of dt
/// (B, nch, D): `scan_state` then `scan_carry`.
fn chunk_states<T: Elem>(
    dev: &CudaDevice,
    (xv, dtv, rv): (&CudaView<T>, &CudaView<T>, &CudaView<f32>),
    (batch, len, dim): Dims,
    n: usize,
    chunk: usize,
    nch: usize,
) -> Result<(CudaSlice<f32>, CudaSlice<f32>)> {
    let maxn = scan_maxn(n)?;
    let [b_, l_, d_, n_, ch_, nch_] = i32s([batch, len, dim, n, chunk, nch])?;
    // SAFETY: scan_state writes every element of both, scan_carry rewrites states in place.
    let states = unsafe { dev.alloc::<f32>(batch * nch * dim * n)? };
    let dtsum = unsafe { dev.alloc::<f32>(batch * nch * dim)? };
    let name = format!("scan_state_{}_{maxn}", T::NAME);
    let f = dev.get_or_load_custom_func(&name, SCAN_MODULE, SCAN_PTX)?;
    let mut b = f.builder();
    b.arg(xv).arg(dtv).arg(rv).arg(&states).arg(&dtsum);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&n_).arg(&ch_).arg(&nch_);
    let cfg = grid(dim.div_ceil(FWD_BLOCK), nch, batch, FWD_BLOCK, TILE * n);
    // SAFETY: the arguments match scan_state's signature.
    unsafe { b.launch(cfg) }.w()?;
    let f = dev.get_or_load_custom_func("scan_carry", SCAN_MODULE, SCAN_PTX)?;
    let mut b = f.builder();
    b.arg(rv)
        .arg(&states)
        .arg(&dtsum)
        .arg(&b_)
        .arg(&d_)
        .arg(&n_)
        .arg(&nch_);
    // SAFETY: the arguments match scan_carry's signature.
    unsafe { b.launch(flat(batch * dim * n)) }.w()?;
    Ok((states, dtsum))
}

/// A candle tensor (no gradient tracking) over freshly computed storage.
fn tensor_over(storage: CudaStorage, shape: &[usize]) -> Tensor {
    Tensor::from_storage(Storage::Cuda(storage), shape, BackpropOp::none(), false)
}

/// [`tensor_over`] a freshly computed slice of one element type.
pub(crate) fn tensor<T: CudaDType>(
    slice: CudaSlice<T>,
    dev: &CudaDevice,
    shape: &[usize],
) -> Tensor {
    tensor_over(CudaStorage::wrap_cuda_slice(slice, dev.clone()), shape)
}

/// The CUDA storage of a contiguous tensor, read-locked, with its layout.
pub(crate) fn cuda_of<'a>(
    t: &'a Tensor,
    what: &str,
) -> Result<(candle_core::StorageRef<'a>, &'a Layout)> {
    let (s, l) = t.storage_and_layout();
    if !matches!(&*s, Storage::Cuda(_)) {
        bail!("{what}: expected a CUDA tensor")
    }
    Ok((s, l))
}

pub(crate) fn as_cuda<'a>(s: &'a candle_core::StorageRef<'_>) -> &'a CudaStorage {
    match &**s {
        Storage::Cuda(c) => c,
        _ => unreachable!("checked by cuda_of"),
    }
}

/// Backward of the scan from the gradient `grad` of its packed output: the gradients of x and dt
/// (x's dtype) and of the packed `rest` (f32). d_state `n` <= 16.
pub fn scan_bwd(
    x: &Tensor,
    dt: &Tensor,
    rest: &Tensor,
    grad: &Tensor,
    n: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "selective-scan backward";
    let dims = x.dims3()?;
    check_nonempty(op, dims)?;
    if n > CUDA_BWD_MAX_STATE {
        bail!("{op}: d_state {n} > {CUDA_BWD_MAX_STATE} is not supported on CUDA")
    }
    let grad = grad.to_dtype(x.dtype())?.contiguous()?;
    let (xs, xl) = cuda_of(x, op)?;
    let (ds, dl) = cuda_of(dt, op)?;
    let (rs, rl) = cuda_of(rest, op)?;
    let (gs, gl) = cuda_of(&grad, op)?;
    let args = [
        (as_cuda(&xs), xl),
        (as_cuda(&ds), dl),
        (as_cuda(&rs), rl),
        (as_cuda(&gs), gl),
    ];
    let dev = args[0].0.device().clone();
    let grest = dev.alloc_zeros::<f32>(rest.elem_count())?;
    let (gx, gdt) = match &args[0].0.slice {
        CudaStorageSlice::F32(_) => {
            let (gx, gdt) = scan_bwd_t::<f32>(&dev, args, &grest, dims, n)?;
            (tensor(gx, &dev, x.dims()), tensor(gdt, &dev, x.dims()))
        }
        CudaStorageSlice::BF16(_) => {
            let (gx, gdt) = scan_bwd_t::<bf16>(&dev, args, &grest, dims, n)?;
            (tensor(gx, &dev, x.dims()), tensor(gdt, &dev, x.dims()))
        }
        CudaStorageSlice::F16(_) => {
            let (gx, gdt) = scan_bwd_t::<f16>(&dev, args, &grest, dims, n)?;
            (tensor(gx, &dev, x.dims()), tensor(gdt, &dev, x.dims()))
        }
        _ => bail!("{op}: expected f32, bf16 or f16 input, got {:?}", x.dtype()),
    };
    Ok((gx, gdt, tensor(grest, &dev, rest.dims())))
}

fn scan_bwd_t<T: Elem>(
    dev: &CudaDevice,
    [x, dt, rest, grad]: [Arg; 4],
    grest: &CudaSlice<f32>,
    dims: Dims,
    n: usize,
) -> Result<(CudaSlice<T>, CudaSlice<T>)> {
    let op = "selective-scan backward";
    let (batch, len, dim) = dims;
    let (xv, dtv, rv, gv) = (
        view::<T>(x, op)?,
        view::<T>(dt, op)?,
        view::<f32>(rest, op)?,
        view::<T>(grad, op)?,
    );
    let nch = len.div_ceil(BWD_CHUNK).max(1);
    let [b_, l_, d_, n_, ch_, nch_] = i32s([batch, len, dim, n, BWD_CHUNK, nch])?;
    let (starts, dtsum) = chunk_states(dev, (&xv, &dtv, &rv), dims, n, BWD_CHUNK, nch)?;

    // SAFETY: scan_dh_state writes every element, scan_dh_carry rewrites them in place.
    let dends = unsafe { dev.alloc::<f32>(batch * nch * dim * n)? };
    let f =
        dev.get_or_load_custom_func(&format!("scan_dh_state_{}", T::NAME), SCAN_MODULE, SCAN_PTX)?;
    let mut b = f.builder();
    b.arg(&dtv).arg(&rv).arg(&gv).arg(&dends);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&n_).arg(&ch_).arg(&nch_);
    let cfg = grid(dim.div_ceil(FWD_BLOCK), nch, batch, FWD_BLOCK, TILE * n);
    // SAFETY: the arguments match scan_dh_state's signature.
    unsafe { b.launch(cfg) }.w()?;

    let f =
        dev.get_or_load_custom_func(&format!("scan_dh_carry_{}", T::NAME), SCAN_MODULE, SCAN_PTX)?;
    let mut b = f.builder();
    b.arg(&rv).arg(&gv).arg(&dends).arg(&dtsum).arg(grest);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&n_).arg(&nch_);
    // SAFETY: the arguments match scan_dh_carry's signature.
    unsafe { b.launch(flat(batch * dim * n)) }.w()?;

    // SAFETY: scan_bwd writes every element of both.
    let gx = unsafe { dev.alloc::<T>(batch * len * dim)? };
    let gdt = unsafe { dev.alloc::<T>(batch * len * dim)? };
    let f = dev.get_or_load_custom_func(&format!("scan_bwd_{}", T::NAME), SCAN_MODULE, SCAN_PTX)?;
    let mut b = f.builder();
    b.arg(&xv)
        .arg(&dtv)
        .arg(&rv)
        .arg(&gv)
        .arg(&starts)
        .arg(&dends);
    b.arg(&gx).arg(&gdt).arg(grest);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&n_).arg(&nch_);
    let groups = BWD_BLOCKS
        .div_ceil(batch * nch)
        .clamp(1, dim.div_ceil(BWD_CHANNELS));
    let cfg = grid(groups, nch, batch, BWD_CHANNELS * 16, 0);
    // SAFETY: the arguments match scan_bwd's signature.
    unsafe { b.launch(cfg) }.w()?;

    // scan_bwd left the gradient of a per (batch, chunk) in `starts`.
    let parts = batch * nch;
    let [parts_] = i32s([parts])?;
    let f = dev.get_or_load_custom_func("scan_ga_reduce", SCAN_MODULE, SCAN_PTX)?;
    let mut b = f.builder();
    b.arg(&starts).arg(grest).arg(&d_).arg(&n_).arg(&parts_);
    let cfg = grid((dim * n).div_ceil(256), parts.min(GA_SPLIT), 1, 256, 0);
    // SAFETY: the arguments match scan_ga_reduce's signature.
    unsafe { b.launch(cfg) }.w()?;
    Ok((gx, gdt))
}

/// Forward conv; returns the packed output [y | next prev] in `x`'s element type.
pub fn conv_fwd(x: Arg, wb: Arg, prev: Arg, dims: Dims, k: usize) -> Result<CudaStorage> {
    let op = "causal-conv1d";
    check_nonempty(op, dims)?;
    let dev = x.0.device().clone();
    let slice = dispatch!(x.0, op, conv_fwd_t(&dev, x, wb, prev, dims, k));
    Ok(CudaStorage { slice, device: dev })
}

fn conv_fwd_t<T: Elem>(
    dev: &CudaDevice,
    x: Arg,
    wb: Arg,
    prev: Arg,
    (batch, len, dim): Dims,
    k: usize,
) -> Result<CudaSlice<T>> {
    let op = "causal-conv1d";
    let (xv, wv, pv) = (
        view::<T>(x, op)?,
        view::<f32>(wb, op)?,
        view::<f32>(prev, op)?,
    );
    let chunk = conv_chunk(len);
    let [b_, l_, d_, k_, ch_] = i32s([batch, len, dim, k, chunk])?;
    // SAFETY: conv_fwd writes every element.
    let out = unsafe { dev.alloc::<T>(batch * len * dim + batch * dim * (k - 1))? };
    let f = dev.get_or_load_custom_func(&format!("conv_fwd_{}", T::NAME), CONV_MODULE, CONV_PTX)?;
    let mut b = f.builder();
    b.arg(&xv).arg(&wv).arg(&pv).arg(&out);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&k_).arg(&ch_);
    let cfg = grid(
        dim.div_ceil(CONV_BLOCK),
        len.div_ceil(chunk).max(1),
        batch,
        CONV_BLOCK,
        0,
    );
    // SAFETY: the arguments match conv_fwd's signature.
    unsafe { b.launch(cfg) }.w()?;
    Ok(out)
}

/// Backward of the conv from the gradient `grad` of its packed output: the gradient of x (x's
/// dtype) and the flat f32 gradient of [wb | prev].
pub fn conv_bwd(
    x: &Tensor,
    wb: &Tensor,
    prev: &Tensor,
    grad: &Tensor,
    k: usize,
) -> Result<(Tensor, Tensor)> {
    let op = "causal-conv1d backward";
    let dims = x.dims3()?;
    check_nonempty(op, dims)?;
    if k > CONV_MAX_K {
        bail!("{op}: kernel width {k} > {CONV_MAX_K} is not supported on CUDA")
    }
    let grad = grad.to_dtype(x.dtype())?.contiguous()?;
    let (xs, xl) = cuda_of(x, op)?;
    let (ws, wl) = cuda_of(wb, op)?;
    let (ps, pl) = cuda_of(prev, op)?;
    let (gs, gl) = cuda_of(&grad, op)?;
    let args = [
        (as_cuda(&xs), xl),
        (as_cuda(&ws), wl),
        (as_cuda(&ps), pl),
        (as_cuda(&gs), gl),
    ];
    let dev = args[0].0.device().clone();
    let rest_len = wb.elem_count() + prev.elem_count();
    let grest = dev.alloc_zeros::<f32>(rest_len)?;
    let gx = match &args[0].0.slice {
        CudaStorageSlice::F32(_) => tensor(
            conv_bwd_t::<f32>(&dev, args, &grest, dims, k)?,
            &dev,
            x.dims(),
        ),
        CudaStorageSlice::BF16(_) => tensor(
            conv_bwd_t::<bf16>(&dev, args, &grest, dims, k)?,
            &dev,
            x.dims(),
        ),
        CudaStorageSlice::F16(_) => tensor(
            conv_bwd_t::<f16>(&dev, args, &grest, dims, k)?,
            &dev,
            x.dims(),
        ),
        _ => bail!("{op}: expected f32, bf16 or f16 input, got {:?}", x.dtype()),
    };
    Ok((gx, tensor(grest, &dev, &[rest_len])))
}

fn conv_bwd_t<T: Elem>(
    dev: &CudaDevice,
    [x, wb, prev, grad]: [Arg; 4],
    grest: &CudaSlice<f32>,
    (batch, len, dim): Dims,
    k: usize,
) -> Result<CudaSlice<T>> {
    let op = "causal-conv1d backward";
    let (xv, wv, pv, gv) = (
        view::<T>(x, op)?,
        view::<f32>(wb, op)?,
        view::<f32>(prev, op)?,
        view::<T>(grad, op)?,
    );
    let chunk = conv_chunk(len);
    let [b_, l_, d_, k_, ch_] = i32s([batch, len, dim, k, chunk])?;
    // SAFETY: conv_bwd writes every element.
    let gx = unsafe { dev.alloc::<T>(batch * len * dim)? };
    let f = dev.get_or_load_custom_func(&format!("conv_bwd_{}", T::NAME), CONV_MODULE, CONV_PTX)?;
    let mut b = f.builder();
    b.arg(&xv).arg(&wv).arg(&pv).arg(&gv).arg(&gx).arg(grest);
    b.arg(&b_).arg(&l_).arg(&d_).arg(&k_).arg(&ch_);
    let cfg = grid(
        dim.div_ceil(CONV_BLOCK),
        len.div_ceil(chunk).max(1),
        batch,
        CONV_BLOCK,
        0,
    );
    // SAFETY: the arguments match conv_bwd's signature.
    unsafe { b.launch(cfg) }.w()?;
    Ok(gx)
}

/// `softplus(dt + bias)` of the inference scan (`kernels/gate.cu`): `dt` (B, L, D) contiguous on
/// a CUDA device (f32, bf16 or f16), `bias` (D) f32. Returns a tensor of dt's shape and dtype.
pub fn softplus_bias(dt: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let op = "softplus-bias";
    let dim = dt.dim(candle_core::D::Minus1)?;
    if bias.dims() != [dim] {
        bail!("{op}: bias of shape {:?} for {dim} channels", bias.dims())
    }
    let (ds, dl) = cuda_of(dt, op)?;
    let (bs, bl) = cuda_of(bias, op)?;
    let (ds, bs) = (as_cuda(&ds), as_cuda(&bs));
    let dev = ds.device().clone();
    let slice = dispatch!(ds, op, softplus_bias_t(&dev, (ds, dl), (bs, bl), dim));
    Ok(tensor_over(CudaStorage { slice, device: dev }, dt.dims()))
}

fn softplus_bias_t<T: Elem>(
    dev: &CudaDevice,
    dt: Arg,
    bias: Arg,
    dim: usize,
) -> Result<CudaSlice<T>> {
    let op = "softplus-bias";
    let (dv, bv) = (view::<T>(dt, op)?, view::<f32>(bias, op)?);
    let n = dv.len();
    let [d_] = i32s([dim])?;
    // SAFETY: the kernel writes every element.
    let out = unsafe { dev.alloc::<T>(n)? };
    let name = format!("softplus_bias_{}", T::NAME);
    let f = dev.get_or_load_custom_func(&name, GATE_MODULE, GATE_PTX)?;
    let mut b = f.builder();
    b.arg(&dv).arg(&bv).arg(&out).arg(&n).arg(&d_);
    // SAFETY: the arguments match softplus_bias's signature.
    unsafe { b.launch(flat(n)) }.w()?;
    Ok(out)
}

/// `(y + dskip x) * silu(z)` after the inference scan (`kernels/gate.cu`): `y`, `x` (B, L, D)
/// contiguous, `dskip` (D) f32, `z` (B, L, D) with contiguous channels and evenly spaced rows (a
/// slice of in_proj's output), y, x and z of one dtype on a CUDA device.
pub fn skip_gate(y: &Tensor, x: &Tensor, dskip: &Tensor, z: &Tensor) -> Result<Tensor> {
    let op = "skip-gate";
    let dims = y.dims3()?;
    if x.dims3()? != dims || z.dims3()? != dims || dskip.dims() != [dims.2] {
        bail!(
            "{op}: mismatched shapes y {:?}, x {:?}, D {:?}, z {:?}",
            y.dims(),
            x.dims(),
            dskip.dims(),
            z.dims()
        )
    }
    let zstride = match *z.layout().stride() {
        [s0, stride, 1] if s0 == dims.1 * stride => stride,
        _ => bail!(
            "{op}: z needs contiguous channels and evenly spaced rows, got strides {:?}",
            z.layout().stride()
        ),
    };
    let (ys, yl) = cuda_of(y, op)?;
    let (xs, xl) = cuda_of(x, op)?;
    let (ds, dl) = cuda_of(dskip, op)?;
    let (zs, zl) = cuda_of(z, op)?;
    let args = [
        (as_cuda(&ys), yl),
        (as_cuda(&xs), xl),
        (as_cuda(&ds), dl),
        (as_cuda(&zs), zl),
    ];
    let dev = args[0].0.device().clone();
    let slice = dispatch!(args[0].0, op, skip_gate_t(&dev, args, dims, zstride));
    Ok(tensor_over(CudaStorage { slice, device: dev }, y.dims()))
}

fn skip_gate_t<T: Elem>(
    dev: &CudaDevice,
    [y, x, dskip, z]: [Arg; 4],
    (_, _, dim): Dims,
    zstride: usize,
) -> Result<CudaSlice<T>> {
    let op = "skip-gate";
    let (yv, xv, dv) = (
        view::<T>(y, op)?,
        view::<T>(x, op)?,
        view::<f32>(dskip, op)?,
    );
    // z's rows lie `zstride` apart from its start offset on.
    let zv = z.0.as_cuda_slice::<T>()?.slice(z.1.start_offset()..);
    let n = yv.len();
    let [d_, zs_] = i32s([dim, zstride])?;
    // SAFETY: the kernel writes every element.
    let out = unsafe { dev.alloc::<T>(n)? };
    let name = format!("skip_gate_{}", T::NAME);
    let f = dev.get_or_load_custom_func(&name, GATE_MODULE, GATE_PTX)?;
    let mut b = f.builder();
    b.arg(&yv)
        .arg(&xv)
        .arg(&dv)
        .arg(&zv)
        .arg(&out)
        .arg(&n)
        .arg(&d_)
        .arg(&zs_);
    // SAFETY: the arguments match skip_gate's signature.
    unsafe { b.launch(flat(n)) }.w()?;
    Ok(out)
}

/// Multi-head attention of `q` (R, S, n) over `notes` (R, V, 2n + 1) where `visible` (R, S, V)
/// lets each query look (`kernels/attention.cu`; see [`crate::infer::note_attention`], whose
/// checks the arguments have passed). f32 tensors on a CUDA device. Returns the read (R, S, n)
/// and, with `want_weights`, the weights (R, heads, S, V).
pub fn note_attention(
    q: &Tensor,
    notes: &Tensor,
    visible: &Tensor,
    heads: usize,
    want_weights: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let op = "note-attention";
    let (rows, s_len, n) = q.dims3()?;
    let v_len = notes.dim(1)?;
    if n / heads > ATTENTION_MAX_HEAD {
        bail!(
            "{op}: heads of width {} (at most {ATTENTION_MAX_HEAD} on CUDA)",
            n / heads
        )
    }
    let (q, notes, visible) = (q.contiguous()?, notes.contiguous()?, visible.contiguous()?);
    let (qs, ql) = cuda_of(&q, op)?;
    let (ns, nl) = cuda_of(&notes, op)?;
    let (vs, vl) = cuda_of(&visible, op)?;
    let (qv, nv, vv) = (
        view::<f32>((as_cuda(&qs), ql), op)?,
        view::<f32>((as_cuda(&ns), nl), op)?,
        view::<f32>((as_cuda(&vs), vl), op)?,
    );
    let dev = as_cuda(&qs).device().clone();
    // SAFETY: the kernel writes every element of both (the weights only when asked for, and
    // then it is allocated to their size).
    let out = unsafe { dev.alloc::<f32>(rows * s_len * n)? };
    let weights = unsafe {
        dev.alloc::<f32>(if want_weights {
            rows * heads * s_len * v_len
        } else {
            1
        })?
    };
    let [s_, v_, n_, h_, w_] = i32s([s_len, v_len, n, heads, usize::from(want_weights)])?;
    let scale = 1.0 / ((n / heads) as f32).sqrt();
    let kernel = match n / heads {
        16 => "note_attention_f32_dh16",
        32 => "note_attention_f32_dh32",
        64 => "note_attention_f32_dh64",
        _ => "note_attention_f32",
    };
    let f = dev.get_or_load_custom_func(kernel, ATTENTION_MODULE, ATTENTION_PTX)?;
    let mut b = f.builder();
    b.arg(&qv).arg(&nv).arg(&vv).arg(&out).arg(&weights);
    b.arg(&s_).arg(&v_).arg(&n_).arg(&h_).arg(&scale).arg(&w_);
    let cfg = grid(
        rows,
        heads,
        1,
        s_len.clamp(1, ATTENTION_THREADS).next_multiple_of(32),
        0,
    );
    // SAFETY: the arguments match note_attention_f32's signature.
    unsafe { b.launch(cfg) }.w()?;
    let read = tensor(out, &dev, &[rows, s_len, n]);
    let weights = want_weights.then(|| tensor(weights, &dev, &[rows, heads, s_len, v_len]));
    Ok((read, weights))
}

/// The gate of a note read added to `acc` (`kernels/gate.cu`; see [`crate::infer::gate_add`],
/// whose checks the arguments have passed): contiguous f32 tensors on a CUDA device, `acc`, `o`,
/// `c` (B, S, d), `w` (1, 2d) and `bias` (1). Returns `acc + g c` and how many rows skipped their
/// read, a u32 tensor (1) on the device: nothing is copied to the host.
pub fn gate_add(
    acc: &Tensor,
    o: &Tensor,
    c: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    tau2: Option<f32>,
) -> Result<(Tensor, Tensor)> {
    let op = "gate-add";
    let (_, _, d) = acc.dims3()?;
    let rows = acc.elem_count() / d.max(1);
    // Without a bias the kernel is handed w, which it does not read as one.
    let bias_or_w = bias.unwrap_or(w);
    let args = [acc, o, c, w, bias_or_w].map(|t| cuda_of(t, op));
    let [a, o, c, w, bias_s] = args;
    let (a, o, c, w, bias_s) = (a?, o?, c?, w?, bias_s?);
    let dev = as_cuda(&a.0).device().clone();
    let views = [&a, &o, &c, &w, &bias_s].map(|(s, l)| view::<f32>((as_cuda(s), *l), op));
    let [av, ov, cv, wv, bv] = views;
    let (av, ov, cv, wv, bv) = (av?, ov?, cv?, wv?, bv?);
    // SAFETY: the kernel writes every element.
    let out = unsafe { dev.alloc::<f32>(rows * d)? };
    let skipped = dev.alloc_zeros::<u32>(1)?;
    let [rows_, d_, has_bias] = i32s([rows, d, usize::from(bias.is_some())])?;
    // A negative threshold turns the sparse gating off.
    let tau2 = tau2.unwrap_or(-1.0);
    let f = dev.get_or_load_custom_func("gate_add_f32", GATE_MODULE, GATE_PTX)?;
    let mut b = f.builder();
    b.arg(&av)
        .arg(&ov)
        .arg(&cv)
        .arg(&wv)
        .arg(&bv)
        .arg(&has_bias);
    b.arg(&tau2).arg(&out).arg(&skipped).arg(&rows_).arg(&d_);
    // SAFETY: the arguments match gate_add_f32's signature.
    unsafe { b.launch(flat(rows * 32)) }.w()?;
    Ok((tensor(out, &dev, a.1.dims()), tensor(skipped, &dev, &[1])))
}

/// The importance scorer after its first matmul (`kernels/gate.cu`; see
/// [`crate::infer::note_log_scores`], whose checks the arguments have passed): contiguous f32
/// tensors on a CUDA device, `h` (B, T, q), `b1` (q), `w2` (1, q), `b2` (1). Returns the
/// log-scores, (B, T).
pub fn note_log_scores(h: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor) -> Result<Tensor> {
    let op = "note-log-scores";
    let (batch, len, q) = h.dims3()?;
    let rows = batch * len;
    let args = [h, b1, w2, b2].map(|t| cuda_of(t, op));
    let [h, b1, w2, b2] = args;
    let (h, b1, w2, b2) = (h?, b1?, w2?, b2?);
    let dev = as_cuda(&h.0).device().clone();
    let views = [&h, &b1, &w2, &b2].map(|(s, l)| view::<f32>((as_cuda(s), *l), op));
    let [hv, b1v, w2v, b2v] = views;
    let (hv, b1v, w2v, b2v) = (hv?, b1v?, w2v?, b2v?);
    // SAFETY: the kernel writes every element.
    let log_scores = unsafe { dev.alloc::<f32>(rows)? };
    let [rows_, q_] = i32s([rows, q])?;
    let f = dev.get_or_load_custom_func("note_log_scores_f32", GATE_MODULE, GATE_PTX)?;
    let mut b = f.builder();
    b.arg(&hv).arg(&b1v).arg(&w2v).arg(&b2v);
    b.arg(&log_scores).arg(&rows_).arg(&q_);
    // SAFETY: the arguments match note_log_scores_f32's signature.
    unsafe { b.launch(flat(rows * 32)) }.w()?;
    Ok(tensor(log_scores, &dev, &[batch, len]))
}

/// The backward of gathering rows (`kernels/gather.cu`): `grad` (M, W) f32 and `index` (M) u32,
/// contiguous on a CUDA device. Returns (rows, W) f32, each row the sum of the gradients of the
/// gathered rows read from it.
pub fn scatter_add_rows(grad: &Tensor, index: &Tensor, rows: usize) -> Result<Tensor> {
    let op = "scatter-add-rows";
    let (m, w) = grad.dims2()?;
    let (gs, gl) = cuda_of(grad, op)?;
    let (is, il) = cuda_of(index, op)?;
    let (gs, is) = (as_cuda(&gs), as_cuda(&is));
    let dev = gs.device().clone();
    let (gv, iv) = (view::<f32>((gs, gl), op)?, view::<u32>((is, il), op)?);
    if iv.len() != m {
        bail!("{op}: {} indices for {m} gradient rows", iv.len())
    }
    let out = dev.alloc_zeros::<f32>(rows * w)?;
    let n = m * w;
    if n > 0 {
        let [w_, rows_] = i32s([w, rows])?;
        let f = dev.get_or_load_custom_func("scatter_add_rows_f32", GATHER_MODULE, GATHER_PTX)?;
        let mut b = f.builder();
        b.arg(&gv).arg(&iv).arg(&out).arg(&n).arg(&w_).arg(&rows_);
        // SAFETY: the arguments match scatter_add_rows_f32's signature.
        unsafe { b.launch(flat(n)) }.w()?;
    }
    Ok(tensor(out, &dev, &[rows, w]))
}
