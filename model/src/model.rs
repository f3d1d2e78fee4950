//! [`MemMamba`]: the embedding, the layers, the final RMSNorm and the tied LM head, run either
//! over a whole batch of sequences with autograd ([`MemMamba::forward`], training) or streamed
//! through a [`MemoryState`] ([`MemMamba::read`], [`MemMamba::step`]). Streaming cuts the tokens
//! into segments that never cross a commit boundary (every C tokens); each layer runs its mixer
//! over all of them at once, then reads its pool segment by segment. The training forward starts
//! from an empty memory, so it replays each layer's pool from the importance scores and reads
//! all chunks at once ([`crate::parallel`]); the streaming tests check that both agree.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Init, VarBuilder, VarMap};

use crate::attention::{Gate, Gating, NoteAttention};
use crate::block::{cross_reader, Layer};
use crate::config::Config;
use crate::error::{invalid_state, ModelError, Result};
use crate::norm::RmsNorm;
use crate::parallel::{attend_chunks, ChunkedNotes};
use crate::pool::{LayerPool, NoteSet, View};
use crate::state::{LayerAttention, MemoryState, NoteWeight};

/// [`MemMamba::read`] processes at most this many tokens at a time, so that its memory use does
/// not grow with the length of what it reads.
pub const READ_BLOCK: usize = 1024;

/// The MemMamba language model (MODEL.md). Weights are named as candle-transformers' Mamba:
/// `backbone.embeddings.weight`, `backbone.layers.{l}.{norm,mixer,notes,token_attn,token_gate,
/// layer_attn,layer_gate}.*`, `backbone.norm_f.weight`; the LM head is the embedding.
#[derive(Clone)]
pub struct MemMamba {
    cfg: Config,
    fingerprint: String,
    /// The network on the trainable variables: its outputs carry the autograd graph.
    train: Net,
    /// The same network on detached views of the same storage (no graph is built, so streaming
    /// frees each block's intermediates at once); updates to the variables show in both.
    infer: Net,
    varmap: VarMap,
    device: Device,
}

/// The layers of a model, on one set of weight tensors.
#[derive(Debug, Clone)]
struct Net {
    /// Whether outputs must backpropagate (the weights are the trainable variables).
    differentiable: bool,
    embedding: Embedding,
    layers: Vec<Layer>,
    norm_f: RmsNorm,
}

impl Net {
    /// Loads the network from `vb`; with `init`, initialises the mixers in that VarMap, whose
    /// variables then carry the autograd graph (the network is differentiable).
    fn new(
        cfg: &Config,
        vb: VarBuilder,
        mut init: Option<&mut VarMap>,
    ) -> candle_core::Result<Self> {
        let differentiable = init.is_some();
        let embedding = vb.pp("backbone.embeddings").get_with_hints(
            (cfg.vocab_size, cfg.d_model),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let layers = (0..cfg.n_layer)
            .map(|l| {
                let vb = vb.pp(format!("backbone.layers.{l}"));
                Layer::new(cfg, l, vb, init.as_deref_mut())
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            differentiable,
            embedding: Embedding::new(embedding, cfg.d_model),
            layers,
            norm_f: RmsNorm::new(cfg.d_model, cfg.rms_norm_eps, vb.pp("backbone.norm_f"))?,
        })
    }
}

impl std::fmt::Debug for MemMamba {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemMamba")
            .field("cfg", &self.cfg)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// `(offset, len)` of the segments of `len` tokens starting at absolute position `start`, cut at
/// every multiple of `chunk`.
fn segments(start: u64, len: usize, chunk: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < len {
        let phase = ((start + off as u64) % chunk as u64) as usize;
        let n = (chunk - phase).min(len - off);
        out.push((off, n));
        off += n;
    }
    out
}

/// A segment of one layer's run: its normed input `u` and mixer output `o` (B, S, d).
struct Segment {
    u: Tensor,
    o: Tensor,
    /// Record what its last token attended to.
    record: bool,
    /// Use only differentiable ops.
    differentiable: bool,
}

/// The notes a view's last token attended to, from attention weights (B, H, S, V).
fn last_token_weights(view: &View, weights: &Tensor) -> Result<Vec<Vec<NoteWeight>>> {
    let (batch, _, s, v) = weights.dims4()?;
    let last = weights
        .narrow(2, s - 1, 1)?
        .mean(1)?
        .squeeze(1)?
        .to_vec2::<f32>()?;
    Ok((0..batch)
        .map(|b| {
            (0..v)
                .filter(|&j| view.mask[(b * s + s - 1) * v + j] > 0.0)
                .map(|j| NoteWeight {
                    layer: view.layers[j],
                    position: view.positions[b][j],
                    weight: last[b][j],
                })
                .collect()
        })
        .collect())
}

impl MemMamba {
    /// Creates a model with fresh weights in `varmap` (f32 on `device`): the official Mamba-1
    /// initialisation for the mixers (see [`crate::MambaMixer::init`]), N(0, 0.02) for the
    /// embedding, ones for the norms and candle's defaults for the other linear layers.
    pub fn init(cfg: &Config, varmap: &VarMap, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        let train = Net::new(cfg, vb, Some(&mut varmap.clone()))?;
        let detached: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .map_err(|_| invalid_state("the variable map's lock is poisoned"))?
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        let infer = Net::new(
            cfg,
            VarBuilder::from_tensors(detached, DType::F32, device),
            None,
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            fingerprint: cfg.fingerprint(),
            train,
            infer,
            varmap: varmap.clone(),
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The trainable variables (shared with the model's tensors: an optimizer stepping them
    /// updates the model).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A fresh [`MemoryState`] for `batch` documents (sparse gating, as at inference).
    pub fn new_state(&self, batch: usize) -> Result<MemoryState> {
        MemoryState::new(&self.cfg, batch, &self.device)
    }

    /// Training forward: logits (B, L, vocab) for `tokens` (B, L) of u32, read from an empty
    /// memory with soft gates, chunked-parallel, differentiable.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_gated(tokens, Gating::Soft)
    }

    /// [`MemMamba::forward`] with the given gating ([`Gating::Sparse`] computes exactly what
    /// streaming the same tokens through a fresh state computes).
    pub fn forward_gated(&self, tokens: &Tensor, gating: Gating) -> Result<Tensor> {
        let state = self.new_state(tokens.dim(0)?)?;
        self.check(&state, tokens)?;
        let r = self.run_parallel(&self.train, tokens, gating)?;
        Ok(self.logits(&self.train, &r)?)
    }

    /// Streams `tokens` (B, S) of u32, S >= 1 and of any size, through `state`; returns the
    /// logits (B, vocab) after the last one. Records in the state what the last token attended
    /// to (see [`MemoryState::attention`]). Reads in blocks of [`READ_BLOCK`] tokens on the
    /// detached weights (no autograd graph; train with [`MemMamba::forward`]), so memory stays
    /// flat however much is read.
    pub fn read(&self, state: &mut MemoryState, tokens: &Tensor) -> Result<Tensor> {
        self.check(state, tokens)?;
        let len = tokens.dim(1)?;
        let mut off = 0;
        let mut last = None;
        while off < len {
            let n = READ_BLOCK.min(len - off);
            let r = self.run(
                &self.infer,
                state,
                &tokens.narrow(1, off, n)?,
                off + n == len,
            )?;
            last = Some(r.narrow(1, n - 1, 1)?);
            off += n;
        }
        let last = last.ok_or_else(|| invalid_state("read needs at least one token"))?;
        Ok(self.logits(&self.infer, &last)?.squeeze(1)?)
    }

    /// Reads one token per batch row (`tokens` (B,) of u32) and returns the logits (B, vocab).
    pub fn step(&self, state: &mut MemoryState, tokens: &Tensor) -> Result<Tensor> {
        self.read(state, &tokens.unsqueeze(1)?)
    }

    fn check(&self, state: &MemoryState, tokens: &Tensor) -> Result<()> {
        if state.fingerprint != self.fingerprint {
            return Err(ModelError::ConfigMismatch {
                what: "memory state",
                expected: self.fingerprint.clone(),
                found: state.fingerprint.clone(),
            });
        }
        let (batch, len) = tokens.dims2()?;
        if batch != state.batch {
            return Err(invalid_state(format!(
                "the state holds {} documents, the tokens {batch}",
                state.batch
            )));
        }
        if len > 0 {
            let max = tokens.to_dtype(DType::U32)?.max_all()?.to_scalar::<u32>()?;
            if max as usize >= self.cfg.vocab_size {
                return Err(ModelError::Invalid {
                    what: "tokens",
                    reason: format!("token id {max} >= vocab_size {}", self.cfg.vocab_size),
                });
            }
        }
        Ok(())
    }

    /// Final norm and tied LM head: (B, T, d) -> (B, T, vocab).
    fn logits(&self, net: &Net, r: &Tensor) -> candle_core::Result<Tensor> {
        let x = net.norm_f.forward(r)?;
        let (b, t, d) = x.dims3()?;
        x.reshape((b * t, d))?
            .matmul(&net.embedding.embeddings().t()?)?
            .reshape((b, t, self.cfg.vocab_size))
    }

    /// Runs `tokens` (B, T) through every layer from `state`, advancing it; returns the
    /// residual stream (B, T, d) after the last layer. With `trace`, records what the last
    /// token attended to.
    fn run(
        &self,
        net: &Net,
        state: &mut MemoryState,
        tokens: &Tensor,
        trace: bool,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let start = state.tokens_read;
        let segs = segments(start, tokens.dim(1)?, cfg.chunk);
        let mut r = net.embedding.forward(tokens)?;
        let mut views: Vec<Vec<View>> = Vec::with_capacity(cfg.n_layer);
        for (l, layer) in net.layers.iter().enumerate() {
            let u = layer.norm.forward(&r)?;
            let ls = &mut state.layers[l];
            let (m, mixer) = layer.mixer.forward(&u, Some(&ls.mixer))?;
            ls.mixer = mixer;
            let o = (&r + m)?;
            let (Some(nl), Some(pool)) = (&layer.notes, ls.pool.as_mut()) else {
                views.push(Vec::new());
                r = o;
                continue;
            };
            views.push(self.write_notes(net, l, &u, pool, start, &segs)?);
            let mut outs = Vec::with_capacity(segs.len());
            for (i, &(off, n)) in segs.iter().enumerate() {
                let seg = Segment {
                    u: u.narrow(1, off, n)?,
                    o: o.narrow(1, off, n)?,
                    record: trace && i + 1 == segs.len(),
                    differentiable: net.differentiable,
                };
                let (read, token) =
                    self.attend(state, (&nl.token_attn, &nl.token_gate), &seg, &views[l][i])?;
                let mut r_s = (&seg.o + read)?;
                let mut cross = Vec::new();
                if let Some((attn, gate)) = &nl.cross {
                    let window: Vec<&View> = (l + 1 - cfg.cross_layer_period..=l)
                        .map(|j| &views[j][i])
                        .collect();
                    let view = View::cat(&window, 1)?;
                    let (read, weights) = self.attend(state, (attn, gate), &seg, &view)?;
                    r_s = (r_s + read)?;
                    cross = weights;
                }
                if seg.record {
                    state.attention[l] = LayerAttention { token, cross };
                }
                outs.push(r_s);
            }
            r = Tensor::cat(&outs, 1)?;
        }
        state.tokens_read += tokens.dim(1)? as u64;
        Ok(r)
    }

    /// Runs `tokens` (B, L) through every layer from an empty memory, every chunk's note reads
    /// at once (see [`crate::parallel`]); returns the residual stream (B, L, d).
    fn run_parallel(&self, net: &Net, tokens: &Tensor, gating: Gating) -> Result<Tensor> {
        let cfg = &self.cfg;
        let len = tokens.dim(1)?;
        let padded = len.div_ceil(cfg.chunk) * cfg.chunk;
        let mut r = net.embedding.forward(tokens)?;
        let mut written: Vec<Option<ChunkedNotes>> = Vec::with_capacity(cfg.n_layer);
        for (l, layer) in net.layers.iter().enumerate() {
            let u = layer.norm.forward(&r)?;
            let (m, _) = layer.mixer.forward(&u, None)?;
            let o = (&r + m)?;
            let Some(nl) = &layer.notes else {
                written.push(None);
                r = o;
                continue;
            };
            // Padding fills the last chunk; its notes are never visible to a real token.
            let (b, _, d) = u.dims3()?;
            let u = if padded > len {
                let pad = Tensor::zeros((b, padded - len, d), u.dtype(), u.device())?;
                Tensor::cat(&[&u, &pad], 1)?
            } else {
                u
            };
            let w = nl.notes.write(&u)?;
            let notes = ChunkedNotes::new(cfg, w.notes, w.log_scores, &w.scores.to_vec2()?, len)?;
            let read = |attn: &NoteAttention, gate: &Gate, layers: &[&ChunkedNotes]| {
                let c = attend_chunks(attn, &u, layers, net.differentiable)?.narrow(1, 0, len)?;
                Ok::<_, ModelError>(gate.apply(&o, &c, gating, cfg.tau2)?.0)
            };
            let mut next = (&o + read(&nl.token_attn, &nl.token_gate, &[&notes])?)?;
            written.push(Some(notes));
            if let Some((attn, gate)) = &nl.cross {
                let window = (l + 1 - cfg.cross_layer_period..=l)
                    .map(|j| written[j].as_ref())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        invalid_state("a cross-layer window holds a layer without notes")
                    })?;
                next = (next + read(attn, gate, &window)?)?;
            }
            r = next;
        }
        Ok(r)
    }

    /// Layer `l`'s note block over the whole run `u` (B, T, d): scores and projects every token
    /// once, then walks the segments, returning what each one sees and appending/committing
    /// its notes to `pool`.
    fn write_notes(
        &self,
        net: &Net,
        l: usize,
        u: &Tensor,
        pool: &mut LayerPool,
        start: u64,
        segs: &[(usize, usize)],
    ) -> Result<Vec<View>> {
        let cfg = &self.cfg;
        let Some(nl) = &net.layers[l].notes else {
            return Ok(Vec::new());
        };
        let written = nl.notes.write(u)?;
        let scores = written.scores.to_vec2::<f32>()?;
        let mut kv = vec![nl.token_attn.project(&written.notes)?];
        if let Some(reader) = cross_reader(cfg, l) {
            let cross = net.layers[reader]
                .notes
                .as_ref()
                .and_then(|n| n.cross.as_ref());
            if let Some((attn, _)) = cross {
                kv.push(attn.project(&written.notes)?);
            }
        }
        let all = NoteSet {
            log_scores: written.log_scores,
            kv,
        };
        let chunk = cfg.chunk as u64;
        segs.iter()
            .map(|&(off, n)| {
                let seg = all.narrow(off, n)?;
                let seg_scores: Vec<Vec<f32>> = scores
                    .iter()
                    .map(|row| row[off..off + n].to_vec())
                    .collect();
                let pos = start + off as u64;
                let view = pool.view(l, &seg, &seg_scores, pos, cfg.tau1)?;
                pool.append(seg, seg_scores)?;
                let end = pos + n as u64;
                if end.is_multiple_of(chunk) {
                    pool.commit(end - chunk, cfg.pool_policy, cfg.tau1)?;
                }
                Ok(view)
            })
            .collect()
    }

    /// One gated attention read of `seg` over `view`; counts sparse skips in `state` and, with
    /// `seg.record`, returns what the last token attended to.
    fn attend(
        &self,
        state: &mut MemoryState,
        (attn, gate): (&NoteAttention, &Gate),
        seg: &Segment,
        view: &View,
    ) -> Result<(Tensor, Vec<Vec<NoteWeight>>)> {
        let (keys, values) = &view.notes.kv[0];
        let (bias, seen) = view.mask_tensors(seg.u.device())?;
        let (c, weights) = attn.forward(
            &seg.u,
            keys,
            values,
            &view.notes.log_scores,
            &bias,
            &seen,
            seg.differentiable,
        )?;
        let (read, skipped) = gate.apply(&seg.o, &c, state.gating, self.cfg.tau2)?;
        if state.gating == Gating::Sparse {
            let (b, s, _) = seg.o.dims3()?;
            state.gate_reads += (b * s) as u64;
            state.gate_skips += skipped;
        }
        let trace = if seg.record {
            last_token_weights(view, &weights)?
        } else {
            Vec::new()
        };
        Ok((read, trace))
    }
}
