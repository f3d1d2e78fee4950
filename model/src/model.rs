//! [`MemMamba`]: the embedding, the layers, the final RMSNorm and the tied LM head, run either
//! over a whole batch of sequences with autograd ([`MemMamba::forward`], training) or streamed
//! through a [`MemoryState`] ([`MemMamba::read`], [`MemMamba::step`]). Streaming cuts the tokens
//! into segments that never cross a commit boundary (every C tokens); each layer runs its mixer
//! over all of them at once, then reads its pool segment by segment. The training forward starts
//! from an empty memory, so it replays each layer's pool from the importance scores and reads
//! all chunks at once ([`crate::parallel`]); the streaming tests check that both agree.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Embedding, Init, VarBuilder, VarMap};
use memmamba_kernels::transfer::HostCopy;

use crate::attention::{Gate, Gating, NoteAttention};
use crate::block::{cross_reader, reads_notes, Layer};
use crate::config::Config;
use crate::error::{invalid_state, ModelError, Result};
use crate::norm::RmsNorm;
use crate::parallel::{attend_chunks, BlockNotes, Grid, Read};
use crate::pool::NoteSet;
use crate::seeded::SeededVarMap;
use crate::state::{LayerAttention, MemoryState};
use crate::weights::lock_vars;

/// On the CPU, [`MemMamba::read`] processes at most this many tokens at a time, so that its
/// memory use does not grow with the length of what it reads. 512 rather than 1,024: as fast on
/// two cores, and a block's intermediates, which the note path and the mixer hold at once when
/// they run side by side, take half the memory (docs/BENCHMARKS.md).
pub const READ_BLOCK: usize = 512;

/// [`READ_BLOCK`] on a GPU, where a block's ops cost their launches and the host's pool replay
/// more than their work: on an H100, 32,768 tokens read with notes at 0.53-0.63x the notes-off
/// rate, 8,192 at 0.42x (host-bound); the price is ~1.5 GB more GPU memory, the same at every
/// document length (docs/BENCHMARKS.md).
pub const GPU_READ_BLOCK: usize = 32768;

/// What [`MemMamba::run`] collects besides the residual stream, still on the device.
#[derive(Default)]
struct RunExtras {
    /// Under sparse gating, each gate's count of skipped reads, (1,) u32.
    skips: Vec<Tensor>,
    /// On the differentiable path, each note-writing layer's scorer logits, (B, T).
    score_logits: Vec<Tensor>,
}

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

impl MemMamba {
    /// Creates a model with fresh weights in `varmap` (f32 on `device`): the official Mamba-1
    /// initialisation for the mixers (see [`crate::MambaMixer::init`]), N(0, 0.02) for the
    /// embedding, ones for the norms and candle's defaults for the other linear layers, all
    /// drawn from a generator seeded with `seed` (the same seed gives the same weights).
    pub fn init(cfg: &Config, varmap: &VarMap, device: &Device, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let backend: Box<dyn SimpleBackend> = Box::new(SeededVarMap::new(varmap, seed));
        let vb = VarBuilder::from_backend(backend, DType::F32, device.clone());
        let train = Net::new(cfg, vb, Some(&mut varmap.clone()))?;
        let detached: HashMap<String, Tensor> = lock_vars(varmap)?
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

    /// Draws the read path afresh, as [`MemMamba::init`] with `seed` would draw it, and keeps
    /// every other weight. The read path is each layer's attention over the pools and its gate
    /// ([`crate::block::reads_notes`]); the note writers and scorers are not part of it. A
    /// trained model whose reads have settled on ignoring the notes does not unlearn that,
    /// while a fresh read path over the same notes learns to use them (docs/EVAL.md,
    /// fourteenth and fifteenth sessions). Returns how many tensors were replaced.
    pub fn reinit_read_path(&self, seed: u64) -> Result<usize> {
        let fresh_map = VarMap::new();
        Self::init(&self.cfg, &fresh_map, &self.device, seed)?;
        let fresh = lock_vars(&fresh_map)?;
        let mut replaced = 0;
        for (name, var) in lock_vars(&self.varmap)?.iter() {
            if reads_notes(name) {
                var.set(fresh[name].as_tensor())?;
                replaced += 1;
            }
        }
        Ok(replaced)
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
        let mut state = self.new_state(tokens.dim(0)?)?.with_gating(gating);
        Ok(self.forward_from(&mut state, tokens)?.0)
    }

    /// The training forward continuing from `state` (under its gating) and advancing it: how
    /// training carries the memory from one sequence of a document to the next. Returns the
    /// logits (B, L, vocab) and the importance scorers' logits `x` (`s = sigmoid(x)`) of every
    /// layer that writes notes, (B, L) each, for training to regularise: once a logit is deep
    /// in the sigmoid's tail, the read path's gradient on it (through `ln s`) vanishes. The
    /// state's new tensors carry this call's autograd graph; detach them
    /// ([`MemoryState::detach`]) before the next call unless its gradient should flow back here.
    pub fn forward_from(
        &self,
        state: &mut MemoryState,
        tokens: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        self.check(state, tokens)?;
        let mut extras = RunExtras::default();
        let r = self.run(&self.train, state, tokens, false, &mut extras)?;
        Ok((self.logits(&self.train, &r)?, extras.score_logits))
    }

    /// Streams `tokens` (B, S) of u32, S >= 1 and of any size, through `state`; returns the
    /// logits (B, vocab) after the last one. Records in the state what the last token attended
    /// to (see [`MemoryState::attention`]). Reads in blocks of [`READ_BLOCK`] tokens ([`GPU_READ_BLOCK`] on a GPU) on the
    /// detached weights (no autograd graph; train with [`MemMamba::forward`]), so memory stays
    /// flat however much is read.
    pub fn read(&self, state: &mut MemoryState, tokens: &Tensor) -> Result<Tensor> {
        self.check(state, tokens)?;
        let len = tokens.dim(1)?;
        let mut off = 0;
        let mut last = None;
        let mut extras = RunExtras::default();
        while off < len {
            let n = self.read_block().min(len - off);
            let r = self.run(
                &self.infer,
                state,
                &tokens.narrow(1, off, n)?,
                off + n == len,
                &mut extras,
            )?;
            last = Some(r.narrow(1, n - 1, 1)?);
            off += n;
        }
        // One copy to the host for the whole read, not one per gate.
        if !extras.skips.is_empty() {
            let skipped = Tensor::cat(&extras.skips, 0)?.to_vec1::<u32>()?;
            state.gate_skips += skipped.into_iter().map(u64::from).sum::<u64>();
        }
        let last = last.ok_or_else(|| invalid_state("read needs at least one token"))?;
        Ok(self.logits(&self.infer, &last)?.squeeze(1)?)
    }

    /// Tokens [`MemMamba::read`] processes at a time on this model's device: [`GPU_READ_BLOCK`]
    /// on a GPU, [`READ_BLOCK`] elsewhere. A caller that reads in pieces (to report progress
    /// between them) hands it this many tokens at a time: smaller pieces on a GPU make each
    /// read launch-bound.
    pub fn read_block(&self) -> usize {
        if self.device.is_cuda() {
            GPU_READ_BLOCK
        } else {
            READ_BLOCK
        }
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
    /// residual stream (B, T, d) after the last layer. Each layer runs its mixer over the block,
    /// then reads its pool for all chunks at once ([`crate::parallel`]). With `trace`, records
    /// what the last token attended to. Under sparse gating, the gates' counts of skipped reads
    /// go to `extras`, still on the device, and `state.gate_reads` counts their applications; on
    /// the differentiable path, so do the scorers' logits.
    fn run(
        &self,
        net: &Net,
        state: &mut MemoryState,
        tokens: &Tensor,
        trace: bool,
        extras: &mut RunExtras,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let grid = Grid::new(state.tokens_read, tokens.dim(1)?, cfg.chunk);
        let mut r = net.embedding.forward(tokens)?;
        let mut written: Vec<Option<BlockNotes>> = Vec::with_capacity(cfg.n_layer);
        // The note path (writing the notes, replaying the pool, reading it) needs only u, not
        // the mixer's output: on the CPU at inference both run side by side, so that the note
        // path's serial steps (the host replay, copies, small ops) use the core that the
        // mixer's matmuls and loops would leave idle between their parallel parts.
        let side_by_side = !net.differentiable && self.device.is_cpu();
        for (l, layer) in net.layers.iter().enumerate() {
            let u = layer.norm.forward(&r)?;
            let ls = &mut state.layers[l];
            let mixer_state = &ls.mixer;
            let mix = || layer.mixer.forward(&u, Some(mixer_state));
            let (Some(nl), Some(pool)) = (&layer.notes, ls.pool.as_mut()) else {
                let (m, mixer) = mix()?;
                ls.mixer = mixer;
                written.push(None);
                r = (&r + m)?;
                continue;
            };
            // The note block's log-scores go to the host, where the pool is replayed.
            let write_notes = || {
                let w = nl.notes.write(&u, net.differentiable)?;
                let mut kv = vec![nl.token_attn.project(&w.notes)?];
                if let Some(reader) = cross_reader(cfg, l) {
                    let cross = net.layers[reader]
                        .notes
                        .as_ref()
                        .and_then(|n| n.cross.as_ref());
                    if let Some((attn, _)) = cross {
                        kv.push(attn.project(&w.notes)?);
                    }
                }
                let log_scores = HostCopy::start(&w.log_scores)?;
                let new = NoteSet {
                    log_scores: w.log_scores,
                    kv,
                };
                Ok::<_, ModelError>((new, log_scores, w.logits))
            };
            // The pool replayed over the block (on the host) and committed.
            let mut replay = |(new, log_scores, logits): (NoteSet, HostCopy, Option<Tensor>)| {
                let log_scores: Vec<Vec<f32>> = log_scores
                    .wait()?
                    .chunks(grid.len.max(1))
                    .map(<[f32]>::to_vec)
                    .collect();
                let notes = BlockNotes::new(cfg, l, grid, pool, &new, &log_scores)?;
                notes.commit(pool)?;
                Ok::<_, ModelError>((notes, logits))
            };
            let attend = |(notes, logits): (BlockNotes, Option<Tensor>)| {
                let u = grid.place(&u)?;
                let read = |attn: &NoteAttention, layers: &[&BlockNotes], reader| {
                    attend_chunks(attn, &u, layers, reader, net.differentiable, trace)
                };
                let token = read(&nl.token_attn, &[&notes], 0)?;
                let cross = match &nl.cross {
                    Some((attn, _)) => {
                        let mut window = written[l + 1 - cfg.cross_layer_period..l]
                            .iter()
                            .map(Option::as_ref)
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                invalid_state("a cross-layer window holds a layer without notes")
                            })?;
                        window.push(&notes);
                        Some(read(attn, &window, 1)?)
                    }
                    None => None,
                };
                Ok::<_, ModelError>((notes, token, cross, logits))
            };
            let (mixed, reads) = if side_by_side {
                rayon::join(mix, || attend(write_notes().and_then(replay)?))
            } else {
                // The log-scores' copy to the host is queued after the note block's kernels and
                // before the mixer's, and waits for those only (memmamba_kernels::transfer):
                // the mixer runs on the GPU while the host replays the pool, and the layout it
                // sends up does not wait for the mixer either.
                let new_notes = write_notes();
                let mixed = mix();
                (mixed, new_notes.and_then(&mut replay).and_then(attend))
            };
            let ((m, mixer), (notes, token, cross, logits)) = (mixed?, reads?);
            state.layers[l].mixer = mixer;
            extras.score_logits.extend(logits);
            written.push(Some(notes));
            let o = (&r + m)?;
            // `acc + g c` for the read `c`, gated by `gate`.
            let mut gated = |acc: &Tensor, read: &Read, gate: &Gate| {
                let c = grid.block(&read.c)?;
                let (sum, skipped) =
                    gate.add(acc, &o, &c, state.gating, cfg.tau2, net.differentiable)?;
                if state.gating == Gating::Sparse {
                    state.gate_reads += (o.dim(0)? * o.dim(1)?) as u64;
                    extras.skips.push(skipped);
                }
                Ok::<_, ModelError>(sum)
            };
            let mut next = gated(&o, &token, &nl.token_gate)?;
            if let (Some(read), Some((_, gate))) = (&cross, &nl.cross) {
                next = gated(&next, read, gate)?;
            }
            if trace {
                state.attention[l] = LayerAttention {
                    token: token.trace,
                    cross: cross.map(|read| read.trace).unwrap_or_default(),
                };
            }
            r = next;
        }
        state.tokens_read += tokens.dim(1)? as u64;
        Ok(r)
    }
}
