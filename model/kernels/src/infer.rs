//! Inference paths of the Mamba-1 mixer and of the note attention: no autograd; f32 tensors on
//! the CPU, and for the mixer and the attention also tensors on a CUDA device.
//!
//! The same goes for the note attention: [`note_attention`] is one loop per chunk (one kernel
//! on a GPU, `kernels/attention.cu`) instead of a dozen candle ops (head reshapes, masks,
//! softmax) over (chunks, heads, C, K + C) tensors.
//!
//! Between its matmuls the mixer runs a chain of elementwise steps: SiLU after the conv,
//! softplus of dt (with dt_proj's bias), the D skip and the gate by `silu(z)` after the scan.
//! As candle ops each one is a pass over (B, L, D) that allocates its output, and x, z, b and c
//! are slices of wider projection outputs that the fused ops copy out first. On the CPU they are
//! folded into the conv and scan loops of [`crate::cpu`], which read those slices where they
//! lie. On a CUDA device [`gated_scan`] runs the scan kernels between two elementwise kernels
//! (`kernels/gate.cu`: softplus with the bias before, the D skip and the gate after, reading z
//! where it lies), a dozen launches fewer per layer. Training keeps the unfused composition
//! ([`crate::ops`]), whose backward passes autograd derives; the tests check that both compute
//! the same.

use candle_core::{bail, CpuStorage, Device, Layout, Result, Storage, StorageRef, Tensor};

use crate::cpu::{self, Rows};
use crate::ops::{conv_wb, host_f32, split_packed};

/// A tensor's storage held for reading, with its layout.
struct Host<'a> {
    storage: StorageRef<'a>,
    layout: &'a Layout,
}

impl<'a> Host<'a> {
    fn new(t: &'a Tensor) -> Self {
        let (storage, layout) = t.storage_and_layout();
        Self { storage, layout }
    }

    /// The f32 CPU storage of the tensor.
    fn data(&self) -> Result<&[f32]> {
        match &*self.storage {
            Storage::Cpu(CpuStorage::F32(data)) => Ok(data),
            _ => bail!("fused CPU inference: expected an f32 tensor on the CPU"),
        }
    }

    /// The data of a contiguous tensor.
    fn contiguous(&self) -> Result<&[f32]> {
        match self.layout.contiguous_offsets() {
            Some((start, end)) => Ok(&self.data()?[start..end]),
            None => bail!("fused CPU inference: expected a contiguous tensor"),
        }
    }

    /// The tensor (B, L, D), f32 on the CPU, as [`Rows`]: its channels must be contiguous and
    /// its rows evenly spaced (a contiguous tensor, or a slice of the last dimension of one).
    fn rows(&self) -> Result<Rows<'_>> {
        let data = self.data()?;
        let (_, len, _) = self.layout.shape().dims3()?;
        match *self.layout.stride() {
            [s0, stride, 1] if s0 == len * stride => Ok(Rows {
                data: &data[self.layout.start_offset()..],
                stride,
            }),
            _ => bail!(
                "fused CPU inference: rows with contiguous channels expected, got strides {:?}",
                self.layout.stride()
            ),
        }
    }
}

/// Whether `x` is an f32 tensor on a CUDA device outside any autograd graph: the inputs the
/// kernels of [`crate::cuda`] take for [`note_attention`], [`gate_add`] and [`note_log_scores`].
#[cfg(feature = "cuda")]
fn untracked_f32_on_cuda(x: &Tensor) -> bool {
    x.device().is_cuda() && x.dtype() == candle_core::DType::F32 && !x.track_op()
}

/// Checks that `x` is an f32 tensor on the CPU outside any autograd graph.
fn check_input(what: &str, x: &Tensor) -> Result<()> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 || x.track_op() {
        bail!("{what}: an f32 CPU tensor without gradient tracking expected")
    }
    Ok(())
}

/// Checks that every `(tensor, dims)` pair, and the optional state, has those dims: a wrong
/// shape is an error, not an out-of-bounds read in the loops.
fn check_shapes(
    what: &str,
    args: &[(&Tensor, &[usize])],
    state: Option<(&Tensor, [usize; 3])>,
) -> Result<()> {
    let state = state.as_ref().map(|(t, dims)| (*t, &dims[..]));
    for (t, dims) in args.iter().copied().chain(state) {
        if t.dims() != dims {
            bail!(
                "{what}: expected an argument of shape {dims:?}, got {:?}",
                t.dims()
            )
        }
    }
    Ok(())
}

/// `silu(causal_conv1d(x, w, bias, prev))` (see the crate docs for shapes); `x` may be a slice of
/// the last dimension of a wider tensor. Returns (y, next prev).
pub fn causal_conv1d_silu(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    prev: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    if x.device().is_cuda() {
        let (y, next) = crate::ops::causal_conv1d(&x.contiguous()?, w, bias, prev)?;
        return Ok((y.silu()?, next));
    }
    check_input("causal_conv1d_silu", x)?;
    let dims = x.dims3()?;
    let (batch, _, dim) = dims;
    let k = w.dim(1)?;
    if k == 0 {
        bail!("causal_conv1d_silu: kernel width must be at least 1")
    }
    check_shapes(
        "causal_conv1d_silu",
        &[(w, &[dim, k]), (bias, &[dim])],
        prev.map(|p| (p, [batch, dim, k - 1])),
    )?;
    let wb = host_f32(&conv_wb(w, bias)?)?;
    let prev = match prev {
        Some(p) => host_f32(p)?,
        None => vec![0f32; batch * dim * (k - 1)],
    };
    let host = Host::new(x);
    let out = cpu::conv_fwd(&cpu::ConvInputs {
        x: host.rows()?,
        wb: &wb,
        prev: &prev,
        dims,
        k,
        silu: true,
    });
    let out = Tensor::from_vec(out, x.elem_count() + batch * dim * (k - 1), &Device::Cpu)?;
    split_packed(&out, dims, k - 1, x.dtype())
}

/// The rest of the mixer's inputs to [`gated_scan`], besides x.
#[derive(Debug, Clone, Copy)]
pub struct GatedScanArgs<'a> {
    /// dt_proj's output before its bias (B, L, D).
    pub dt: &'a Tensor,
    /// dt_proj's bias (D).
    pub dt_bias: &'a Tensor,
    /// A (D, N), negative.
    pub a: &'a Tensor,
    /// B and C (B, L, N).
    pub b: &'a Tensor,
    pub c: &'a Tensor,
    /// The skip weights D (D).
    pub d: &'a Tensor,
    /// The gate z (B, L, D).
    pub z: &'a Tensor,
    /// The state before the first step (B, D, N), or None for zeros.
    pub h0: Option<&'a Tensor>,
}

/// The mixer's scan with the steps around it: with `delta = softplus(dt + dt_bias)`, runs the
/// selective scan of x over `delta` (see the crate docs) and returns
/// `((y + D x) * silu(z), h_last)`. Every (B, L, *) argument may be a slice of the last dimension
/// of a wider tensor (x and z of in_proj's output, b and c of x_proj's).
pub fn gated_scan(x: &Tensor, args: &GatedScanArgs) -> Result<(Tensor, Tensor)> {
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() {
        let f32 = |t: &Tensor| t.to_dtype(candle_core::DType::F32);
        let x = x.contiguous()?;
        let dt = crate::cuda::softplus_bias(&args.dt.contiguous()?, &f32(args.dt_bias)?)?;
        let (y, h) = crate::ops::selective_scan(&x, &dt, args.a, args.b, args.c, args.h0)?;
        return Ok((crate::cuda::skip_gate(&y, &x, &f32(args.d)?, args.z)?, h));
    }
    check_input("gated_scan", x)?;
    let dims = x.dims3()?;
    let (batch, _, dim) = dims;
    let n = args.a.dim(1)?;
    let (bld, bln) = ([batch, dims.1, dim], [batch, dims.1, n]);
    check_shapes(
        "gated_scan",
        &[
            (args.dt, &bld),
            (args.z, &bld),
            (args.b, &bln),
            (args.c, &bln),
            (args.a, &[dim, n]),
            (args.dt_bias, &[dim]),
            (args.d, &[dim]),
        ],
        args.h0.map(|h0| (h0, [batch, dim, n])),
    )?;
    let (a, dt_bias, d) = (
        host_f32(args.a)?,
        host_f32(args.dt_bias)?,
        host_f32(args.d)?,
    );
    let h0 = match args.h0 {
        Some(h0) => host_f32(h0)?,
        None => vec![0f32; batch * dim * n],
    };
    let [x_host, dt, b, c, z] = [x, args.dt, args.b, args.c, args.z].map(Host::new);
    let out = cpu::scan_fwd(&cpu::ScanInputs {
        x: x_host.rows()?,
        dt: dt.rows()?,
        a: &a,
        h0: &h0,
        b: b.rows()?,
        c: c.rows()?,
        dims,
        n,
        fusion: Some(cpu::ScanFusion {
            dt_bias: &dt_bias,
            d: &d,
            z: z.rows()?,
        }),
    });
    let out = Tensor::from_vec(out, x.elem_count() + batch * dim * n, &Device::Cpu)?;
    split_packed(&out, dims, n, x.dtype())
}

/// Multi-head attention of queries `q` (R, S, n) over notes given by their keys, values and
/// log-scores side by side in `notes` (R, V, 2n + 1), with `heads` heads of `n / heads`: per
/// head, the logits `q k^T / sqrt(n / heads) + log_scores` of the notes that `visible`
/// (R, S, V, 1 or 0) lets a query see go through a softmax, and the read is the weighted sum of
/// their values; a query that sees no note reads zeros. Returns the read (R, S, n) and, with
/// `want_weights`, the weights (R, heads, S, V), 0 where a note is not visible.
pub fn note_attention(
    q: &Tensor,
    notes: &Tensor,
    visible: &Tensor,
    heads: usize,
    want_weights: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (rows, s_len, n) = q.dims3()?;
    let v_len = notes.dim(1)?;
    if heads == 0 || n % heads != 0 {
        bail!("note_attention: {heads} heads do not divide the width {n}")
    }
    check_shapes(
        "note_attention",
        &[
            (notes, &[rows, v_len, 2 * n + 1]),
            (visible, &[rows, s_len, v_len]),
        ],
        None,
    )?;
    #[cfg(feature = "cuda")]
    if untracked_f32_on_cuda(q) {
        return crate::cuda::note_attention(q, notes, visible, heads, want_weights);
    }
    check_input("note_attention", q)?;
    // No copy for the contiguous tensors the model passes.
    let (q, notes, visible) = (q.contiguous()?, notes.contiguous()?, visible.contiguous()?);
    let [q_h, notes_h, visible_h] = [&q, &notes, &visible].map(Host::new);
    let (read, weights) = cpu::note_attention(
        &cpu::AttentionInputs {
            q: q_h.contiguous()?,
            notes: notes_h.contiguous()?,
            visible: visible_h.contiguous()?,
            dims: (rows, s_len, v_len, n, heads),
            scale: 1.0 / ((n / heads) as f32).sqrt(),
        },
        want_weights,
    );
    let read = Tensor::from_vec(read, (rows, s_len, n), &Device::Cpu)?;
    let weights = want_weights
        .then(|| Tensor::from_vec(weights, (rows, heads, s_len, v_len), &Device::Cpu))
        .transpose()?;
    Ok((read, weights))
}

/// The gate of a note read, added to `acc` (B, S, d): with
/// `g = sigmoid(w[.., ..d] . o + w[.., d..] . c + bias)` per token (`w` (1, 2d), `bias` (1)),
/// returns `acc + g c` and how many tokens skipped their read, as a u32 tensor (1) on `acc`'s
/// device (a GPU keeps counting without waiting for the host; read it when needed). With `tau2`
/// (sparse gating) a token whose gate is below it skips the read (its `g` is 0). One pass over
/// the rows instead of the gate's matrix-vector products, sigmoid, threshold, broadcast product
/// and the sum, each a candle op over the block (most of them single-threaded).
pub fn gate_add(
    acc: &Tensor,
    o: &Tensor,
    c: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    tau2: Option<f32>,
) -> Result<(Tensor, Tensor)> {
    let dims = acc.dims3()?;
    let d = dims.2;
    check_shapes(
        "gate_add",
        &[(o, acc.dims()), (c, acc.dims()), (w, &[1, 2 * d])],
        None,
    )?;
    if let Some(b) = bias {
        check_shapes("gate_add", &[(b, &[1])], None)?;
    }
    let (acc, o, c, w) = (
        acc.contiguous()?,
        o.contiguous()?,
        c.contiguous()?,
        w.contiguous()?,
    );
    #[cfg(feature = "cuda")]
    if untracked_f32_on_cuda(&acc) {
        let bias = bias.map(Tensor::contiguous).transpose()?;
        return crate::cuda::gate_add(&acc, &o, &c, &w, bias.as_ref(), tau2);
    }
    check_input("gate_add", &acc)?;
    let bias = bias.map_or(Ok(0.0), |b| Ok::<_, candle_core::Error>(host_f32(b)?[0]))?;
    let [acc_h, o_h, c_h, w_h] = [&acc, &o, &c, &w].map(Host::new);
    let (out, skipped) = cpu::gate_add(&cpu::GateInputs {
        acc: acc_h.contiguous()?,
        o: o_h.contiguous()?,
        c: c_h.contiguous()?,
        w: w_h.contiguous()?,
        bias,
        d,
        tau2,
    });
    let skipped = u32::try_from(skipped).map_err(|_| {
        candle_core::Error::Msg(format!("gate_add: {skipped} skipped rows overflow a u32"))
    })?;
    Ok((
        Tensor::from_vec(out, dims, &Device::Cpu)?,
        Tensor::new(&[skipped], &Device::Cpu)?,
    ))
}

/// The importance scorer after its first matmul: for `h = u W1^T` (B, T, q) without W1's bias
/// `b1` (q), and the second layer `w2` (1, q) with its bias `b2` (1), returns the log-scores
/// `ln sigmoid(w2 . relu(h + b1) + b2)`, (B, T), exact in both tails. One pass instead of a
/// dozen candle ops (bias, relu, a one-column matmul and the stable log-sigmoid): a loop on the
/// CPU, a kernel on a CUDA device.
pub fn note_log_scores(h: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor) -> Result<Tensor> {
    let (batch, len, q) = h.dims3()?;
    if q == 0 {
        bail!("note_log_scores: the scorer's hidden layer is empty")
    }
    check_shapes(
        "note_log_scores",
        &[(b1, &[q]), (w2, &[1, q]), (b2, &[1])],
        None,
    )?;
    let h = h.contiguous()?;
    #[cfg(feature = "cuda")]
    if untracked_f32_on_cuda(&h) {
        let [b1, w2, b2] = [b1, w2, b2].map(Tensor::contiguous);
        return crate::cuda::note_log_scores(&h, &b1?, &w2?, &b2?);
    }
    check_input("note_log_scores", &h)?;
    let h_host = Host::new(&h);
    let (b1, w2) = (host_f32(b1)?, host_f32(w2)?);
    let log_scores = cpu::note_log_scores(h_host.contiguous()?, &b1, &w2, host_f32(b2)?[0]);
    Tensor::from_vec(log_scores, (batch, len), &Device::Cpu)
}
