//! Fused CPU loops (f32) behind the ops of [`crate::ops`], forward and backward, on the packed
//! layouts described there.
//!
//! The forward passes run one rayon task per (batch, block of channels) and walk time
//! sequentially; the scan keeps the state `h` of its block in a small local buffer, the conv reads
//! its K-tap window straight from `prev` and `x`. The scan backward recomputes the states of one
//! channel at a time and walks time backwards.

use multiversion::multiversion;
use rayon::prelude::*;

/// Channels handled by one task: consecutive channels share cache lines of `x`, `dt` and `y`.
const CHANNEL_BLOCK: usize = 16;

/// (batch, len, dim) of a (B, L, D) input.
pub type Dims = (usize, usize, usize);

/// One output row of a channel block: its [`CHANNEL_BLOCK`] lanes (the lanes past the block's
/// channels are padding). Whole arrays are stored and copied as vectors; a slice of an
/// accumulator of dynamic length would keep it in memory instead of a register.
type Lanes = [f32; CHANNEL_BLOCK];

/// Runs `block(b, d0, cb)` for every batch `b` and block of `cb` channels starting at `d0`, in
/// parallel. Each call returns its outputs in time order (`len` rows) and its final state
/// (`cb * state`). Returns them packed as y (B, L, D) followed by state (B, D, state), written
/// in order (no zero-fill first).
fn run_channel_blocks<F>(batch: usize, len: usize, dim: usize, state: usize, block: F) -> Vec<f32>
where
    F: Fn(usize, usize, usize) -> (Vec<Lanes>, Vec<f32>) + Sync,
{
    let blocks = dim.div_ceil(CHANNEL_BLOCK);
    let results: Vec<(Vec<Lanes>, Vec<f32>)> = (0..batch * blocks)
        .into_par_iter()
        .map(|task| {
            let (b, d0) = (task / blocks, (task % blocks) * CHANNEL_BLOCK);
            block(b, d0, CHANNEL_BLOCK.min(dim - d0))
        })
        .collect();
    let mut out = Vec::with_capacity(batch * dim * (len + state));
    for row in results.chunks(blocks) {
        for t in 0..len {
            for (y, _) in &row[..blocks - 1] {
                out.extend_from_slice(&y[t]);
            }
            let last = dim - (blocks - 1) * CHANNEL_BLOCK;
            out.extend_from_slice(&row[blocks - 1].0[t][..last]);
        }
    }
    for (_, s) in &results {
        out.extend_from_slice(s);
    }
    out
}

/// A (B, L, D) input read in place: row `bt = b * L + t` starts at `data[bt * stride]` and holds
/// the D channels one after the other. A contiguous tensor has `stride = D`; a slice of the
/// channels of a wider tensor (x or z of the mixer's in_proj output, b or c of its x_proj output)
/// is read where it lies, without a copy.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl<'a> Rows<'a> {
    /// Channels `d0..d0 + len` of row `bt`.
    #[inline(always)]
    fn get(&self, bt: usize, d0: usize, len: usize) -> &'a [f32] {
        let at = bt * self.stride + d0;
        &self.data[at..at + len]
    }

    /// Asks the CPU to fetch channel `d0` of row `bt` (when there is one) into the cache. The
    /// loops walk time over a block of channels, so the rows they read lie a row stride (a page
    /// or more) apart: the hardware prefetchers do not follow that, and without this each step
    /// stalled on a cache and TLB miss (a quarter of the scan's time).
    #[inline(always)]
    fn prefetch(&self, bt: usize, d0: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(v) = self.data.get(bt * self.stride + d0) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: SSE is part of the x86-64 baseline, and a prefetch of a valid address
            // (an element of `data`) has no effect besides the cache.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(v).cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (bt, d0);
    }
}

/// How many time steps ahead the loops prefetch their rows ([`Rows::prefetch`]).
const PREFETCH_STEPS: usize = 8;

/// The parts a, h0, b, c of the scan's packed `rest` (b and c as contiguous rows of N).
pub fn split_rest(
    rest: &[f32],
    (batch, len, dim): Dims,
    n: usize,
) -> (&[f32], &[f32], Rows<'_>, Rows<'_>) {
    let (a, rest) = rest.split_at(dim * n);
    let (h0, rest) = rest.split_at(batch * dim * n);
    let (b, c) = rest.split_at(batch * len * n);
    let rows = |data| Rows { data, stride: n };
    (a, h0, rows(b), rows(c))
}

/// `out[i] = exp(dt * a[i])`, the per-state decay of one scan step. A loop of its own over a
/// polynomial exp: libm's `expf` is a call, which keeps the loop scalar, and it was the largest
/// single cost of the CPU scan. Compiled with FMA like the forward loops (see [`exp_poly`]).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn decays(dt: f32, a: &[f32], out: &mut [f32]) {
    for (e, &a) in out.iter_mut().zip(a) {
        *e = exp_poly(dt * a);
    }
}

/// `exp(x)` within a few ulp for x in [-87, 88] (clamped outside; the scan only takes x <= 0):
/// x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-6 Taylor polynomial, times 2^n built
/// from the exponent bits. Branch-free and conversion-free (n is read from the bits of the
/// rounding sum), so the compiler vectorises loops over it. Its callers are compiled for FMA
/// targets ([`multiversion`]), where `mul_add` is one instruction (on the baseline build, the
/// fallback for CPUs without FMA, it is a libm call: slower, as exact).
#[inline(always)]
fn exp_poly(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x.mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = n.mul_add(-1.428_606_8e-6, n.mul_add(-0.693_145_75, x));
    let p = [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0]
        .iter()
        .fold(1.0f32 / 720.0, |p, &c| p.mul_add(r, c));
    // The low bits of `shifted` hold n (|n| < 2^22 keeps its exponent that of ROUND).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `ln(1 + y)` for y in [0, 1], vectorisable: with s = y / (2 + y) (in [0, 1/3]),
/// ln(1 + y) = 2 atanh(s) = 2 (s + s^3/3 + ... + s^13/13), within 1e-8 of the exact value. The
/// quotient keeps a tiny y exact where `1 + y` would round it away.
#[inline(always)]
fn ln_1p_unit(y: f32) -> f32 {
    let s = y / (2.0 + y);
    let s2 = s * s;
    let series = [1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0]
        .iter()
        .fold(1.0f32 / 13.0, |p, &c| p.mul_add(s2, c));
    2.0 * s * series
}

/// `softplus(x) = max(x, 0) + ln(1 + exp(-|x|))`, which never overflows (MODEL.md's dt).
#[inline(always)]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln_1p_unit(exp_poly(-x.abs()))
}

/// `silu(x) = x * sigmoid(x)`.
#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + exp_poly(-x))
}

/// The mixer's steps around the scan that the CPU inference path fuses into it (the training
/// op leaves them to autograd): the scan then reads the raw `dt_proj` output, and writes the
/// gated output `(y + D x) * silu(z)` instead of `y`.
#[derive(Debug, Clone, Copy)]
pub struct ScanFusion<'a> {
    /// dt_proj's bias (D): the scan's rate is `softplus(dt + dt_bias)`.
    pub dt_bias: &'a [f32],
    /// The skip weights D (D).
    pub d: &'a [f32],
    /// The gate z (B, L, D).
    pub z: Rows<'a>,
}

/// The inputs of the scan forward.
#[derive(Debug, Clone, Copy)]
pub struct ScanInputs<'a> {
    pub x: Rows<'a>,
    pub dt: Rows<'a>,
    /// A (D, N).
    pub a: &'a [f32],
    /// The state before the first step (B, D, N).
    pub h0: &'a [f32],
    /// B and C (B, L, N).
    pub b: Rows<'a>,
    pub c: Rows<'a>,
    pub dims: Dims,
    pub n: usize,
    pub fusion: Option<ScanFusion<'a>>,
}

/// One (batch `b`, channels `d0..d0 + cb`) task of the scan forward: y (`len` rows of lanes)
/// and the final state (cb * n). The block's state is held state-major (row `i`: state `i` of
/// its channels, padded to [`CHANNEL_BLOCK`] lanes with zero rates, which keep a zero state), so
/// every step is lane-wise over the channels: no reduction across a vector. Compiled for
/// AVX-512 and for AVX2 as well as the baseline and picked at run time (the baseline x86-64
/// build has only SSE2; 16 lanes are one AVX-512 register).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn scan_fwd_block(inp: &ScanInputs, b: usize, d0: usize, cb: usize) -> (Vec<Lanes>, Vec<f32>) {
    const W: usize = CHANNEL_BLOCK;
    let ((_, len, dim), n) = (inp.dims, inp.n);
    let h_at = (b * dim + d0) * n;
    let mut h = vec![[0f32; W]; n];
    let mut a = vec![[0f32; W]; n];
    for j in 0..cb {
        for i in 0..n {
            h[i][j] = inp.h0[h_at + j * n + i];
            a[i][j] = inp.a[(d0 + j) * n + i];
        }
    }
    let fusion = inp.fusion.map(|f| {
        let block = |v: &[f32]| lanes(&v[d0..d0 + cb]);
        (block(f.dt_bias), block(f.d), f.z)
    });
    let mut y = Vec::with_capacity(len);
    for t in 0..len {
        let bt = b * len + t;
        if t + PREFETCH_STEPS < len {
            let ahead = bt + PREFETCH_STEPS;
            inp.x.prefetch(ahead, d0);
            inp.dt.prefetch(ahead, d0);
            if let Some((_, _, z)) = &fusion {
                z.prefetch(ahead, d0);
            }
        }
        let mut dt = lanes(inp.dt.get(bt, d0, cb));
        let x = lanes(inp.x.get(bt, d0, cb));
        if let Some((dt_bias, _, _)) = &fusion {
            for j in 0..W {
                dt[j] = softplus(dt[j] + dt_bias[j]);
            }
        }
        let dx: [f32; W] = std::array::from_fn(|j| dt[j] * x[j]);
        let (b_t, c_t) = (inp.b.get(bt, 0, n), inp.c.get(bt, 0, n));
        // `acc` is only touched by loops short enough to unroll, which keeps it in a register:
        // inside a loop with an exp in its body it lived on the stack, and the sum over the
        // states became a chain of store-to-load forwards.
        let mut acc = [0f32; W];
        for (((h_i, a_i), &b_i), &c_i) in h.iter_mut().zip(&a).zip(b_t).zip(c_t) {
            let decay: Lanes = std::array::from_fn(|j| exp_poly(dt[j] * a_i[j]));
            for j in 0..W {
                h_i[j] = decay[j].mul_add(h_i[j], dx[j] * b_i);
                acc[j] = h_i[j].mul_add(c_i, acc[j]);
            }
        }
        if let Some((_, d, z)) = &fusion {
            let z = lanes(z.get(bt, d0, cb));
            let gate: Lanes = std::array::from_fn(|j| silu(z[j]));
            for j in 0..W {
                acc[j] = d[j].mul_add(x[j], acc[j]) * gate[j];
            }
        }
        y.push(acc);
    }
    let mut h_last = vec![0f32; cb * n];
    for j in 0..cb {
        for i in 0..n {
            h_last[j * n + i] = h[i][j];
        }
    }
    (y, h_last)
}

/// `values` (at most [`CHANNEL_BLOCK`] of them) as a block's lanes, zero-padded. A whole block
/// is one array copy, which compiles to a vector load: a lane-by-lane fill (or a `memcpy` call)
/// stalls the vector ops that read it.
#[inline(always)]
fn lanes(values: &[f32]) -> [f32; CHANNEL_BLOCK] {
    match <&[f32; CHANNEL_BLOCK]>::try_from(values) {
        Ok(whole) => *whole,
        Err(_) => std::array::from_fn(|j| values.get(j).copied().unwrap_or(0.0)),
    }
}

/// Selective scan forward: returns y (B, L, D) followed by h_last (B, D, N).
pub fn scan_fwd(inputs: &ScanInputs) -> Vec<f32> {
    let (batch, len, dim) = inputs.dims;
    run_channel_blocks(batch, len, dim, inputs.n, |b, d0, cb| {
        scan_fwd_block(inputs, b, d0, cb)
    })
}

/// The inputs of the note attention forward ([`note_attention`]): R independent rows (chunks),
/// each with S queries over V notes of width `n` (H heads of `n / H`).
#[derive(Debug, Clone, Copy)]
pub struct AttentionInputs<'a> {
    /// Queries (R, S, n), not yet scaled.
    pub q: &'a [f32],
    /// Per note its key, its value and its log-score (added to its logits), side by side:
    /// (R, V, 2n + 1).
    pub notes: &'a [f32],
    /// 1 where query s may read note v, else 0 (R, S, V).
    pub visible: &'a [f32],
    /// (R, S, V, n, H).
    pub dims: (usize, usize, usize, usize, usize),
    /// Multiplies the query-key products (1 / sqrt(n / H)).
    pub scale: f32,
}

/// `values` folded with `f` (associative and commutative, like max or +) from `init`, in
/// [`CHANNEL_BLOCK`] lanes: a fold straight over the values is one chain of dependent
/// operations that the compiler may not reorder (for floats) and so keeps scalar.
#[inline(always)]
fn lane_fold(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; CHANNEL_BLOCK];
    let mut chunks = values.chunks_exact(CHANNEL_BLOCK);
    for chunk in &mut chunks {
        for j in 0..CHANNEL_BLOCK {
            acc[j] = f(acc[j], chunk[j]);
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&acc)
        .fold(init, |a, &b| f(a, b))
}

/// The dot product of `a` and `b`, summed in [`CHANNEL_BLOCK`] lanes like [`lane_fold`].
#[inline(always)]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; CHANNEL_BLOCK];
    let (mut xs, mut ys) = (a.chunks_exact(CHANNEL_BLOCK), b.chunks_exact(CHANNEL_BLOCK));
    for (x, y) in (&mut xs).zip(&mut ys) {
        for j in 0..CHANNEL_BLOCK {
            acc[j] = x[j].mul_add(y[j], acc[j]);
        }
    }
    let tail = xs.remainder().iter().zip(ys.remainder());
    tail.fold(acc.iter().sum(), |sum, (&x, &y)| x.mul_add(y, sum))
}

/// One row of [`note_attention`]: its read (S * n) and, with `want_weights`, its weights
/// (H * S * V).
///
/// Both products keep their sums in registers ([`Lanes`]): a block of 16 notes' logits is
/// summed over the head's dimensions (keys transposed and padded to whole blocks), and a read
/// is summed note by note over a head's values laid out in lanes (padded to whole lane blocks),
/// four notes at a time in independent sums. Sums over a slice of dynamic length would go
/// through memory at every step, and a dot product per dimension ends in a horizontal sum.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn attention_row(inp: &AttentionInputs, r: usize, want_weights: bool) -> (Vec<f32>, Vec<f32>) {
    let (_, s_len, v_len, n, heads) = inp.dims;
    let dh = n / heads;
    let width = 2 * n + 1;
    let notes = &inp.notes[r * v_len * width..(r + 1) * v_len * width];
    let visible = &inp.visible[r * s_len * v_len..(r + 1) * s_len * v_len];
    let v_pad = v_len.div_ceil(CHANNEL_BLOCK) * CHANNEL_BLOCK;
    let blocks = dh.div_ceil(CHANNEL_BLOCK); // lane blocks per head
                                             // kt[c * v_pad + v]: dimension c of note v's key; log_scores padded alike.
    let mut kt = vec![0f32; n * v_pad];
    let mut log_scores = vec![0f32; v_pad];
    // values[(h * blocks + j) * V + v]: lanes j * 16.. of head h's part of note v's value.
    let mut values = vec![[0f32; CHANNEL_BLOCK]; heads * blocks * v_len];
    for (v, note) in notes.chunks_exact(width).enumerate() {
        for c in 0..n {
            kt[c * v_pad + v] = note[c];
            let (h, i) = (c / dh, c % dh);
            values[(h * blocks + i / CHANNEL_BLOCK) * v_len + v][i % CHANNEL_BLOCK] = note[n + c];
        }
        log_scores[v] = note[2 * n];
    }
    let mut read = vec![0f32; s_len * n];
    let mut weights = vec![
        0f32;
        if want_weights {
            heads * s_len * v_len
        } else {
            0
        }
    ];
    // One head's weights (S, V), zeros for a query that sees no note.
    let mut probs = vec![0f32; s_len * v_len];
    let mut logits = vec![0f32; v_pad];
    let mut q = vec![0f32; dh];
    for h in 0..heads {
        let head_keys = &kt[h * dh * v_pad..(h + 1) * dh * v_pad];
        for (s, w) in probs.chunks_exact_mut(v_len).enumerate() {
            let vis = &visible[s * v_len..(s + 1) * v_len];
            let at = (r * s_len + s) * n + h * dh;
            for (q, &x) in q.iter_mut().zip(&inp.q[at..at + dh]) {
                *q = x * inp.scale;
            }
            for (b, out) in logits.chunks_exact_mut(CHANNEL_BLOCK).enumerate() {
                let mut acc: Lanes = log_scores[b * CHANNEL_BLOCK..(b + 1) * CHANNEL_BLOCK]
                    .try_into()
                    .expect("a block of lanes");
                for (&q_d, k_d) in q.iter().zip(head_keys.chunks_exact(v_pad)) {
                    let k = &k_d[b * CHANNEL_BLOCK..(b + 1) * CHANNEL_BLOCK];
                    for j in 0..CHANNEL_BLOCK {
                        acc[j] = q_d.mul_add(k[j], acc[j]);
                    }
                }
                out.copy_from_slice(&acc);
            }
            // Softmax over the visible notes; the others get exactly 0 (exp_poly clamps the
            // hidden ones' -inf to a finite value, which the mask then zeroes).
            for ((l, &x), &m) in w.iter_mut().zip(&logits).zip(vis) {
                *l = if m > 0.0 { x } else { f32::NEG_INFINITY };
            }
            let max = lane_fold(w, f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                w.fill(0.0); // a query that sees no note reads zeros
                continue;
            }
            for (l, &m) in w.iter_mut().zip(vis) {
                *l = exp_poly(*l - max) * m;
            }
            let inv = 1.0 / lane_fold(w, 0.0, |a, b| a + b);
            for l in w.iter_mut() {
                *l *= inv;
            }
        }
        if want_weights {
            weights[h * s_len * v_len..(h + 1) * s_len * v_len].copy_from_slice(&probs);
        }
        for (out, w) in read.chunks_exact_mut(n).zip(probs.chunks_exact(v_len)) {
            let out = &mut out[h * dh..(h + 1) * dh];
            let head_values =
                values[h * blocks * v_len..(h + 1) * blocks * v_len].chunks_exact(v_len);
            for (out, rows) in out.chunks_mut(CHANNEL_BLOCK).zip(head_values) {
                let mut acc = [[0f32; CHANNEL_BLOCK]; 4];
                let (mut quads, mut ws) = (rows.chunks_exact(4), w.chunks_exact(4));
                for (rows, w) in (&mut quads).zip(&mut ws) {
                    for u in 0..4 {
                        for j in 0..CHANNEL_BLOCK {
                            acc[u][j] = w[u].mul_add(rows[u][j], acc[u][j]);
                        }
                    }
                }
                for (row, &w) in quads.remainder().iter().zip(ws.remainder()) {
                    for j in 0..CHANNEL_BLOCK {
                        acc[0][j] = w.mul_add(row[j], acc[0][j]);
                    }
                }
                for (j, o) in out.iter_mut().enumerate() {
                    *o = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
                }
            }
        }
    }
    (read, weights)
}

/// Multi-head attention of queries over notes, every row in parallel: with per head
/// `logits = scale * q k^T + log_scores` over the visible notes, returns the read
/// `softmax(logits) v` (R, S, n) (zeros for a query that sees no note) and, with
/// `want_weights`, the weights (R, H, S, V) (0 for notes it may not see).
pub fn note_attention(inp: &AttentionInputs, want_weights: bool) -> (Vec<f32>, Vec<f32>) {
    let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..inp.dims.0)
        .into_par_iter()
        .map(|r| attention_row(inp, r, want_weights))
        .collect();
    let (reads, weights): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
    (reads.concat(), weights.concat())
}

/// The inputs of the fused gate ([`gate_add`]): R rows of width `d`.
#[derive(Debug, Clone, Copy)]
pub struct GateInputs<'a> {
    /// What the gated read is added to (R, d).
    pub acc: &'a [f32],
    /// The mixer output `o` and the read `c` the gate looks at (R, d) each.
    pub o: &'a [f32],
    pub c: &'a [f32],
    /// The gate's weights: `d` for `o`, then `d` for `c`.
    pub w: &'a [f32],
    pub bias: f32,
    pub d: usize,
    /// Sparse gating: a row whose gate is below this threshold skips its read.
    pub tau2: Option<f32>,
}

/// Rows of [`gate_add`] per rayon task: each row is a few hundred floats of work.
const GATE_ROWS: usize = 64;

/// `acc + g c` per row, with the gate `g = sigmoid(w_o . o + w_c . c + bias)`, set to 0 under
/// sparse gating where `g < tau2`; returns the output (R, d) and the number of rows that skipped
/// their read. The rows run in parallel.
pub fn gate_add(inp: &GateInputs) -> (Vec<f32>, u64) {
    let step = GATE_ROWS * inp.d;
    let mut out = vec![0f32; inp.acc.len()];
    let skipped = out
        .par_chunks_mut(step)
        .enumerate()
        .map(|(i, out)| gate_rows(inp, i * step, out))
        .sum();
    (out, skipped)
}

/// The rows of [`gate_add`] whose output `out` starts at element `at`; returns how many skipped
/// their read. Compiled for the vector units with FMA: `mul_add` elsewhere is a libm call.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn gate_rows(inp: &GateInputs, at: usize, out: &mut [f32]) -> u64 {
    let d = inp.d;
    let (w_o, w_c) = inp.w.split_at(d);
    let range = at..at + out.len();
    let (acc, o, c) = (
        &inp.acc[range.clone()],
        &inp.o[range.clone()],
        &inp.c[range],
    );
    let mut skipped = 0;
    let rows = out.chunks_exact_mut(d).zip(acc.chunks_exact(d));
    for ((out, acc), (o, c)) in rows.zip(o.chunks_exact(d).zip(c.chunks_exact(d))) {
        let logit = lane_dot(o, w_o) + lane_dot(c, w_c) + inp.bias;
        let mut g = 1.0 / (1.0 + (-logit).exp());
        if inp.tau2.is_some_and(|tau2| g < tau2) {
            g = 0.0;
            skipped += 1;
        }
        for ((y, &a), &x) in out.iter_mut().zip(acc).zip(c) {
            *y = a + x * g;
        }
    }
    skipped
}

/// The importance scorer's tail over R rows of `h = W1 u` (R, q) (before W1's bias `b1`):
/// per row the logit `x = w2 . relu(h + b1) + b2`, returned as the log-score
/// `ln sigmoid(x) = min(x, 0) - log1p(exp(-|x|))`, exact in both tails (the pool ranks notes by
/// it, and `ln(1 + e)` alone would round every logit past ~16.6 to the same 0). `log1p(y)` is
/// computed as the training ops compute it (`memmamba::notes::ln_sigmoid`: its series below
/// 1e-3, `ln(1 + y)` above), so that both CPU paths rank a pool's notes alike. Compiled for FMA
/// like [`gate_rows`] (Rust never contracts the series into FMAs).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
pub fn note_log_scores(h: &[f32], b1: &[f32], w2: &[f32], b2: f32) -> Vec<f32> {
    h.chunks_exact(b1.len())
        .map(|row| {
            let mut x = b2;
            for ((&h, &b), &w) in row.iter().zip(b1).zip(w2) {
                x = (h + b).max(0.0).mul_add(w, x);
            }
            let y = (-x.abs()).exp();
            let log1p = if y < 1e-3 {
                y * (y * (y * (1.0 / 3.0) - 0.5) + 1.0)
            } else {
                (y + 1.0).ln()
            };
            x.min(0.0) - log1p
        })
        .collect()
}

/// Gradients computed by one (batch, channel block) task of the scan backward.
struct ScanBlockGrads {
    gx: Vec<f32>,
    gdt: Vec<f32>,
    ga: Vec<f32>,
    gh0: Vec<f32>,
    gb: Vec<f32>,
    gc: Vec<f32>,
}

/// Selective scan backward from the gradient `grad` of the packed output (y then h_last):
/// returns the gradients of x, dt and of the packed `rest`.
pub fn scan_bwd(
    x: &[f32],
    dt: &[f32],
    rest: &[f32],
    grad: &[f32],
    dims: Dims,
    n: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (batch, len, dim) = dims;
    let (a, h0, bm, cm) = split_rest(rest, dims, n);
    let (bm, cm) = (bm.data, cm.data);
    let (gy, gh_last) = grad.split_at(batch * len * dim);
    let blocks = dim.div_ceil(CHANNEL_BLOCK);

    // One task per (batch, channel block): gradients of x and dt (time-major, len * cb), of a
    // and h0 (cb * n), and this block's partial gradients of b and c (len * n).
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
                gb: vec![0f32; len * n],
                gc: vec![0f32; len * n],
            };
            // States h_0 .. h_len of one channel, h_0 being the initial state.
            let mut hs = vec![0f32; (len + 1) * n];
            let mut dh = vec![0f32; n];
            let mut decay = vec![0f32; n];
            for j in 0..cb {
                let d = d0 + j;
                let a_d = &a[d * n..(d + 1) * n];
                let h_at = (b * dim + d) * n;
                hs[..n].copy_from_slice(&h0[h_at..h_at + n]);
                for t in 0..len {
                    let row = (b * len + t) * dim + d;
                    let (dt_v, u) = (dt[row], dt[row] * x[row]);
                    let b_t = &bm[(b * len + t) * n..(b * len + t + 1) * n];
                    let (done, rest) = hs.split_at_mut((t + 1) * n);
                    let h_prev = &done[t * n..];
                    decays(dt_v, a_d, &mut decay);
                    for i in 0..n {
                        rest[i] = decay[i] * h_prev[i] + u * b_t[i];
                    }
                }
                dh.copy_from_slice(&gh_last[h_at..h_at + n]);
                for t in (0..len).rev() {
                    let row = (b * len + t) * dim + d;
                    let (x_v, dt_v, gy_v) = (x[row], dt[row], gy[row]);
                    let u = dt_v * x_v;
                    let at = (b * len + t) * n;
                    let (b_t, c_t) = (&bm[at..at + n], &cm[at..at + n]);
                    let gb_t = &mut out.gb[t * n..(t + 1) * n];
                    let gc_t = &mut out.gc[t * n..(t + 1) * n];
                    let h_t = &hs[(t + 1) * n..(t + 2) * n];
                    let h_prev = &hs[t * n..(t + 1) * n];
                    let ga_j = &mut out.ga[j * n..(j + 1) * n];
                    let (mut gu, mut gdt) = (0f32, 0f32);
                    decays(dt_v, a_d, &mut decay);
                    for i in 0..n {
                        gc_t[i] += gy_v * h_t[i];
                        let dh_i = dh[i] + gy_v * c_t[i];
                        gb_t[i] += dh_i * u;
                        gu += dh_i * b_t[i];
                        let e = decay[i];
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

    let mut gx = vec![0f32; batch * len * dim];
    let mut gdt = vec![0f32; batch * len * dim];
    let mut grest = vec![0f32; rest.len()];
    let (ga, tail) = grest.split_at_mut(dim * n);
    let (gh0, tail) = tail.split_at_mut(batch * dim * n);
    let (gb, gc) = tail.split_at_mut(batch * len * n);
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
        let rows = b * len * n..(b + 1) * len * n;
        for (acc, v) in gb[rows.clone()].iter_mut().zip(&r.gb) {
            *acc += v;
        }
        for (acc, v) in gc[rows].iter_mut().zip(&r.gc) {
            *acc += v;
        }
    }
    (gx, gdt, grest)
}

/// Input of channel `d` at time `p` of the padded sequence prev ++ x (oldest first).
fn conv_input(x: &[f32], prev: &[f32], (b, len, dim): Dims, d: usize, km1: usize, p: usize) -> f32 {
    if p < km1 {
        prev[(b * dim + d) * km1 + p]
    } else {
        x[(b * len + p - km1) * dim + d]
    }
}

/// The inputs of the causal depthwise conv forward.
#[derive(Debug, Clone, Copy)]
pub struct ConvInputs<'a> {
    /// x (B, L, D).
    pub x: Rows<'a>,
    /// The taps with the bias as last column (D, K + 1).
    pub wb: &'a [f32],
    /// The K - 1 inputs before x (B, D, K - 1), oldest first.
    pub prev: &'a [f32],
    pub dims: Dims,
    /// K.
    pub k: usize,
    /// Whether to apply SiLU to the output (the mixer's activation, fused on the CPU inference
    /// path; the training op leaves it to autograd).
    pub silu: bool,
}

/// One (batch `b`, channels `d0..d0 + cb`) task of the conv forward: y (`len` rows of lanes)
/// and the next prev (cb * (K - 1)). Lane-wise over the block's channels like
/// [`scan_fwd_block`]: the last K - 1 inputs are kept as a window of lane arrays, oldest first.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn conv_fwd_block(inp: &ConvInputs, b: usize, d0: usize, cb: usize) -> (Vec<Lanes>, Vec<f32>) {
    const W: usize = CHANNEL_BLOCK;
    let ((_, len, dim), k) = (inp.dims, inp.k);
    let km1 = k - 1;
    // taps[i][j]: tap i (then the bias, at i = K) of channel d0 + j.
    let mut taps = vec![[0f32; W]; k + 1];
    let mut window = vec![[0f32; W]; km1];
    for j in 0..cb {
        for (i, tap) in taps.iter_mut().enumerate() {
            tap[j] = inp.wb[(d0 + j) * (k + 1) + i];
        }
        for (p, w) in window.iter_mut().enumerate() {
            w[j] = inp.prev[(b * dim + d0 + j) * km1 + p];
        }
    }
    let mut y = Vec::with_capacity(len);
    for t in 0..len {
        if t + PREFETCH_STEPS < len {
            inp.x.prefetch(b * len + t + PREFETCH_STEPS, d0);
        }
        let x = lanes(inp.x.get(b * len + t, d0, cb));
        let mut acc = taps[k];
        for (tap, w) in taps.iter().zip(window.iter().chain([&x])) {
            for j in 0..W {
                acc[j] = tap[j].mul_add(w[j], acc[j]);
            }
        }
        if inp.silu {
            for a in &mut acc {
                *a = silu(*a);
            }
        }
        if km1 > 0 {
            window.rotate_left(1);
            window[km1 - 1] = x;
        }
        y.push(acc);
    }
    let next_prev = (0..cb)
        .flat_map(|j| window.iter().map(move |w| w[j]))
        .collect();
    (y, next_prev)
}

/// Causal depthwise conv forward: returns y (B, L, D) followed by the next prev (B, D, K - 1).
pub fn conv_fwd(inputs: &ConvInputs) -> Vec<f32> {
    let (batch, len, dim) = inputs.dims;
    run_channel_blocks(batch, len, dim, inputs.k - 1, |b, d0, cb| {
        conv_fwd_block(inputs, b, d0, cb)
    })
}

/// Causal depthwise conv backward from the gradient `grad` of the packed output (y then next
/// prev): returns the gradients of x and of [wb (D, K + 1) | prev (B, D, K - 1)].
pub fn conv_bwd(
    x: &[f32],
    wb: &[f32],
    prev: &[f32],
    grad: &[f32],
    dims: Dims,
    k: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (batch, len, dim) = dims;
    let (km1, kp1) = (k - 1, k + 1);
    let (gy, g_next) = grad.split_at(batch * len * dim);
    let mut gx = vec![0f32; batch * len * dim];
    let mut grest = vec![0f32; dim * kp1 + batch * dim * km1];
    let (gwb, gprev) = grest.split_at_mut(dim * kp1);
    // Gradient of one channel's padded input prev ++ x, reused across (batch, channel).
    let mut gin = vec![0f32; len + km1];
    for b in 0..batch {
        for d in 0..dim {
            let s_at = (b * dim + d) * km1;
            let input = |p: usize| conv_input(x, prev, (b, len, dim), d, km1, p);
            let w_d = &wb[d * kp1..(d + 1) * kp1];
            let gw_d = &mut gwb[d * kp1..(d + 1) * kp1];
            gin.fill(0.0);
            // The next prev is the last km1 inputs of the padded sequence.
            for m in 0..km1 {
                gin[len + m] += g_next[s_at + m];
            }
            for t in 0..len {
                let gy_v = gy[(b * len + t) * dim + d];
                gw_d[k] += gy_v;
                for tap in 0..k {
                    gw_d[tap] += gy_v * input(t + tap);
                    gin[t + tap] += gy_v * w_d[tap];
                }
            }
            gprev[s_at..s_at + km1].copy_from_slice(&gin[..km1]);
            for t in 0..len {
                gx[(b * len + t) * dim + d] = gin[km1 + t];
            }
        }
    }
    (gx, grest)
}

#[cfg(test)]
mod tests {
    use super::exp_poly;

    #[test]
    fn the_polynomial_exp_matches_libm_over_the_scans_range() {
        let mut worst = 0f64;
        for k in 0..=200_000 {
            let x = -87.0 + 175.0 * k as f32 / 200_000.0;
            let (got, want) = (exp_poly(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(exp_poly(0.0), 1.0);
        assert!(exp_poly(-1000.0) > 0.0 && exp_poly(-1000.0) < 1e-37);
    }
}
