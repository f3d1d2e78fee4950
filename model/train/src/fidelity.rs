//! Memory fidelity: our ETMF / ECLMF curves of MODEL.md section 7 (the paper's formulas were not
//! available to us; these are ours, labelled as such).
//!
//! - ETMF_l(k) = mean over t of cos(e_t, R_k(r^l_{t+k})): how well token t's embedding can be
//!   read back, by a ridge probe R_k, from the residual stream entering layer l k tokens later.
//! - ECLMF(l, m) = mean over t of cos(r^l_t, R(r^{l+m}_t)): how much of layer l's stream at t
//!   survives m layers up.
//!
//! What is measured, exactly: the model reads rows of book text; the state is taken at the last
//! token of each row, and the targets k tokens back. The model's streaming API returns only
//! logits, so the stream entering layer l (l = 1..=n_layer) is read through the same model cut
//! to its first l layers (the layers below l compute the same there): its logits are
//! `E · norm_f(r^l)` with E the tied embedding (vocab x d, full column rank), so
//! `z^l = norm_f(r^l) = (EᵀE)⁻¹ Eᵀ logits` exactly, up to rounding. z^l (the RMS-normalised
//! stream, scaled by the final norm's weights) stands for r^l, and z^0 = norm_f(e). Each probe
//! is fit on rows from the first half of every book and scored on rows from the second halves
//! (held-out text); its ridge strength is chosen on the last fifth of the fitting rows.

use candle_core::{DType, Device, Tensor, D};
use memmamba::MemMamba;

use crate::eval::row;
use crate::tokens::TokenStore;
use crate::TrainError;
use memmamba::Rng;

/// What [`fidelity`] reads and how much.
#[derive(Debug, Clone)]
pub struct FidelityConfig {
    /// Lags k of ETMF (the row is `max(lags) + lead` tokens long).
    pub lags: Vec<usize>,
    /// Depths l (0..=n_layer) whose stream is probed; ECLMF pairs every two of them.
    pub layers: Vec<usize>,
    /// Rows from the first halves of the books (fit) and from the second halves (test).
    pub fit_rows: usize,
    pub test_rows: usize,
    /// Tokens read before the earliest target token.
    pub lead: usize,
    /// Rows read at once.
    pub batch: usize,
    pub seed: u64,
}

/// ETMF_l(k) for one depth and lag.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EtmfPoint {
    pub layer: usize,
    pub lag: usize,
    pub fidelity: f64,
}

/// ECLMF(l, m) for one pair of depths.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EclmfPoint {
    pub layer: usize,
    pub up: usize,
    pub fidelity: f64,
}

/// Both curves of one model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fidelity {
    pub etmf: Vec<EtmfPoint>,
    pub eclmf: Vec<EclmfPoint>,
    pub fit_rows: usize,
    pub test_rows: usize,
}

/// Depths 0, n/4, n/2, 3n/4 and n (rounded, distinct): the default for `layers`.
pub fn quarter_layers(n_layer: usize) -> Vec<usize> {
    let mut layers: Vec<usize> = (0..=4).map(|q| (q * n_layer + 2) / 4).collect();
    layers.dedup();
    layers
}

/// Rows of `len` tokens, each inside one half (`second` or first) of one book, or `None` when
/// no half is that long.
fn half_rows(
    store: &TokenStore,
    len: usize,
    second: bool,
    count: usize,
    rng: &mut Rng,
) -> Option<Vec<Vec<u32>>> {
    let halves: Vec<(usize, usize)> = store
        .books
        .iter()
        .map(|b| {
            let half = b.len / 2;
            if second {
                (b.start + half, b.len - half)
            } else {
                (b.start, half)
            }
        })
        .filter(|&(_, n)| n >= len)
        .collect();
    if halves.is_empty() {
        return None;
    }
    Some(
        (0..count)
            .map(|_| {
                let (start, n) = halves[rng.below(halves.len())];
                let at = start + rng.below(n - len + 1);
                store.tokens[at..at + len]
                    .iter()
                    .map(|&t| t.into())
                    .collect()
            })
            .collect(),
    )
}

/// The model cut to its first `layers` layers, on the same weights.
fn truncated(model: &MemMamba, layers: usize) -> Result<MemMamba, TrainError> {
    let mut cfg = model.config().clone();
    cfg.n_layer = layers;
    let varmap = candle_nn::VarMap::new();
    let cut = MemMamba::init(&cfg, &varmap, model.device(), 0)?;
    for (name, var) in varmap.data().lock().map_err(|_| poisoned())?.iter() {
        var.set(&weight(model, name)?)?;
    }
    Ok(cut)
}

fn poisoned() -> TrainError {
    candle_core::Error::Msg("the weights' lock is poisoned".into()).into()
}

/// The model's weight called `name`.
fn weight(model: &MemMamba, name: &str) -> Result<Tensor, TrainError> {
    model
        .varmap()
        .data()
        .lock()
        .map_err(|_| poisoned())?
        .get(name)
        .map(|v| v.as_tensor().clone())
        .ok_or_else(|| candle_core::Error::Msg(format!("the model has no weight {name}")).into())
}

/// Reads each row through `model` and returns `norm_f` of the stream after its last layer at
/// each row's last token, (rows, d), recovered from the logits with `pinv` (vocab, d).
fn last_streams(
    model: &MemMamba,
    rows: &[Vec<u32>],
    batch: usize,
    pinv: &Tensor,
) -> Result<Tensor, TrainError> {
    let mut out = Vec::new();
    for group in rows.chunks(batch.max(1)) {
        let tokens = Tensor::cat(
            &group
                .iter()
                .map(|r| row(r, model))
                .collect::<Result<Vec<_>, _>>()?,
            0,
        )?;
        let mut state = model.new_state(group.len())?;
        let logits = model.read(&mut state, &tokens)?;
        out.push(logits.to_dtype(DType::F32)?.matmul(pinv)?);
    }
    Ok(Tensor::cat(&out, 0)?.to_device(&Device::Cpu)?)
}

/// `norm_f(x)` for rows `x` (n, d) on the CPU.
fn final_norm(model: &MemMamba, x: &Tensor) -> Result<Tensor, TrainError> {
    let weight = weight(model, "backbone.norm_f.weight")?.to_device(&Device::Cpu)?;
    let eps = model.config().rms_norm_eps;
    let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    Ok(x.broadcast_div(&rms)?.broadcast_mul(&weight)?)
}

/// Measures both curves (see the module documentation).
pub fn fidelity(
    model: &MemMamba,
    store: &TokenStore,
    cfg: &FidelityConfig,
) -> Result<Fidelity, TrainError> {
    let n_layer = model.config().n_layer;
    let max_lag = cfg.lags.iter().copied().max().unwrap_or(0);
    let len = max_lag + cfg.lead + 1;
    let mut rng = Rng::for_step(cfg.seed, len as u64);
    let missing = || candle_core::Error::Msg(format!("no half of a book holds {len} tokens"));
    let fit = half_rows(store, len, false, cfg.fit_rows, &mut rng).ok_or_else(missing)?;
    let test = half_rows(store, len, true, cfg.test_rows, &mut rng).ok_or_else(missing)?;
    let rows: Vec<Vec<u32>> = fit.iter().chain(&test).cloned().collect();

    let e = weight(model, "backbone.embeddings.weight")?;
    // (EᵀE)⁻¹ Eᵀ, transposed: logits (n, vocab) · pinv (vocab, d) = z (n, d).
    let gram = to_f64_rows(&e.t()?.matmul(&e)?)?;
    let inverse = Tensor::new(invert_spd(&gram, e.dim(1)?)?, &Device::Cpu)?
        .reshape((e.dim(1)?, e.dim(1)?))?
        .to_dtype(DType::F32)?
        .to_device(e.device())?;
    let pinv = e.matmul(&inverse)?;
    let e_cpu = e.to_device(&Device::Cpu)?;

    let mut streams = Vec::new();
    for &l in &cfg.layers {
        let z = if l == 0 {
            let last: Vec<u32> = rows.iter().map(|r| r[len - 1]).collect();
            final_norm(
                model,
                &e_cpu.index_select(&Tensor::new(last, &Device::Cpu)?, 0)?,
            )?
        } else if l >= n_layer {
            last_streams(model, &rows, cfg.batch, &pinv)?
        } else {
            last_streams(&truncated(model, l)?, &rows, cfg.batch, &pinv)?
        };
        streams.push((l.min(n_layer), to_f64_rows(&z)?));
    }
    let n_fit = fit.len();
    let probes = streams
        .iter()
        .map(|(_, z)| Probes::new(z, n_fit))
        .collect::<Result<Vec<_>, _>>()?;
    let mut etmf = Vec::new();
    for ((l, _), probes) in streams.iter().zip(&probes) {
        for &lag in &cfg.lags {
            let ids: Vec<u32> = rows.iter().map(|r| r[len - 1 - lag]).collect();
            let target = to_f64_rows(&e_cpu.index_select(&Tensor::new(ids, &Device::Cpu)?, 0)?)?;
            etmf.push(EtmfPoint {
                layer: *l,
                lag,
                fidelity: probes.fidelity(&target)?,
            });
        }
    }
    let mut eclmf = Vec::new();
    for (i, (l, low)) in streams.iter().enumerate() {
        for ((upper, _), high) in streams[i + 1..].iter().zip(&probes[i + 1..]) {
            eclmf.push(EclmfPoint {
                layer: *l,
                up: upper - l,
                fidelity: high.fidelity(low)?,
            });
        }
    }
    Ok(Fidelity {
        etmf,
        eclmf,
        fit_rows: n_fit,
        test_rows: test.len(),
    })
}

/// Rows of a 2-D tensor as f64 vectors.
fn to_f64_rows(x: &Tensor) -> Result<Vec<Vec<f64>>, TrainError> {
    Ok(x.to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f64>()?)
}

/// Ridge strengths tried, as multiples of the mean diagonal of the features' Gram matrix.
const RIDGE_ALPHAS: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// Fits a ridge probe (with intercept) from `x` to `y` on the first `n_fit` rows, its strength
/// chosen on the last fifth of them, and returns the mean cosine between prediction and target
/// over the other rows.
pub fn probe_fidelity(x: &[Vec<f64>], y: &[Vec<f64>], n_fit: usize) -> Result<f64, TrainError> {
    Probes::new(x, n_fit)?.fidelity(y)
}

/// Ridge probes from one set of features: the inverses that every target shares, computed
/// once (for choosing the strength on the first four fifths of the fitting rows, and for the
/// final fit on all of them).
struct Probes<'a> {
    x: &'a [Vec<f64>],
    n_fit: usize,
    train: usize,
    choose: Vec<Basis>,
    fit: Vec<Basis>,
}

/// The centred features of some rows and `(XᵀX + λI)⁻¹` for one strength.
struct Basis {
    mean_x: Vec<f64>,
    xc: Tensor,
    inverse: Tensor,
}

impl<'a> Probes<'a> {
    fn new(x: &'a [Vec<f64>], n_fit: usize) -> Result<Self, TrainError> {
        if n_fit < 5 || n_fit >= x.len() {
            return Err(candle_core::Error::Msg(
                "a probe needs at least 5 fitting rows and one test row".into(),
            )
            .into());
        }
        let train = n_fit - n_fit / 5;
        Ok(Probes {
            x,
            n_fit,
            train,
            choose: Basis::for_alphas(&x[..train])?,
            fit: Basis::for_alphas(&x[..n_fit])?,
        })
    }

    fn fidelity(&self, y: &[Vec<f64>]) -> Result<f64, TrainError> {
        if y.len() != self.x.len() {
            return Err(
                candle_core::Error::Msg("features and targets differ in rows".into()).into(),
            );
        }
        let (train, n_fit) = (self.train, self.n_fit);
        let mut best = (f64::MIN, 0);
        for (i, basis) in self.choose.iter().enumerate() {
            let probe = basis.solve(&y[..train])?;
            let score = mean_cosine(&probe, &self.x[train..n_fit], &y[train..n_fit]);
            if score > best.0 {
                best = (score, i);
            }
        }
        let probe = self.fit[best.1].solve(&y[..n_fit])?;
        Ok(mean_cosine(&probe, &self.x[n_fit..], &y[n_fit..]))
    }
}

fn mean(rows: &[Vec<f64>]) -> Vec<f64> {
    let mut m = vec![0.0; rows[0].len()];
    for r in rows {
        m.iter_mut()
            .zip(r)
            .for_each(|(a, b)| *a += b / rows.len() as f64);
    }
    m
}

fn centred(rows: &[Vec<f64>], m: &[f64]) -> Result<Tensor, TrainError> {
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.iter().zip(m).map(|(a, b)| a - b))
        .collect();
    Ok(Tensor::from_vec(flat, (rows.len(), m.len()), &Device::Cpu)?)
}

impl Basis {
    fn for_alphas(x: &[Vec<f64>]) -> Result<Vec<Basis>, TrainError> {
        let mean_x = mean(x);
        let dx = mean_x.len();
        let xc = centred(x, &mean_x)?;
        let gram = xc.t()?.matmul(&xc)?.flatten_all()?.to_vec1::<f64>()?;
        let scale = (0..dx).map(|i| gram[i * dx + i]).sum::<f64>() / dx as f64;
        RIDGE_ALPHAS
            .iter()
            .map(|alpha| {
                let mut a = gram.clone();
                (0..dx).for_each(|i| a[i * dx + i] += (alpha * scale).max(1e-12));
                Ok(Basis {
                    mean_x: mean_x.clone(),
                    xc: xc.clone(),
                    inverse: Tensor::from_vec(invert_spd_flat(a, dx)?, (dx, dx), &Device::Cpu)?,
                })
            })
            .collect()
    }

    /// The probe for targets `y` (the rows of `xc`).
    fn solve(&self, y: &[Vec<f64>]) -> Result<Ridge, TrainError> {
        let mean_y = mean(y);
        let yc = centred(y, &mean_y)?;
        let w = self
            .inverse
            .matmul(&self.xc.t()?.matmul(&yc)?)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        Ok(Ridge {
            mean_x: self.mean_x.clone(),
            dy: mean_y.len(),
            mean_y,
            w,
        })
    }
}

/// A linear map with intercept: `y = (x - mean_x) W + mean_y`.
struct Ridge {
    mean_x: Vec<f64>,
    mean_y: Vec<f64>,
    /// (d_x, d_y), row-major.
    w: Vec<f64>,
    dy: usize,
}

impl Ridge {
    fn predict(&self, x: &[f64]) -> Vec<f64> {
        let mut y = self.mean_y.clone();
        for (i, (a, m)) in x.iter().zip(&self.mean_x).enumerate() {
            let v = a - m;
            let row = &self.w[i * self.dy..(i + 1) * self.dy];
            y.iter_mut().zip(row).for_each(|(o, w)| *o += v * w);
        }
        y
    }
}

fn mean_cosine(probe: &Ridge, x: &[Vec<f64>], y: &[Vec<f64>]) -> f64 {
    let total: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| cosine(&probe.predict(a), b))
        .sum();
    total / x.len().max(1) as f64
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 {
        dot / denominator
    } else {
        0.0
    }
}

/// The inverse of a symmetric positive-definite matrix given as rows.
fn invert_spd(rows: &[Vec<f64>], d: usize) -> Result<Vec<f64>, TrainError> {
    invert_spd_flat(rows.concat(), d)
}

/// The inverse of a symmetric positive-definite `d` x `d` matrix (row-major), by Cholesky.
fn invert_spd_flat(mut a: Vec<f64>, d: usize) -> Result<Vec<f64>, TrainError> {
    // In place: the lower triangle becomes L with A = L Lᵀ.
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return Err(TrainError::Candle(candle_core::Error::Msg(
                "the matrix is not positive definite".into(),
            )));
        }
        let diag = diag.sqrt();
        a[j * d + j] = diag;
        for i in j + 1..d {
            let mut v = a[i * d + j];
            for k in 0..j {
                v -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = v / diag;
        }
    }
    // Solve L Lᵀ X = I column by column.
    let mut inverse = vec![0.0; d * d];
    let mut col = vec![0.0; d];
    for c in 0..d {
        for i in 0..d {
            let mut v = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                v -= a[i * d + k] * col[k];
            }
            col[i] = v / a[i * d + i];
        }
        for i in (0..d).rev() {
            let mut v = col[i];
            for k in i + 1..d {
                v -= a[k * d + i] * col[k];
            }
            col[i] = v / a[i * d + i];
        }
        for i in 0..d {
            inverse[i * d + c] = col[i];
        }
    }
    Ok(inverse)
}
