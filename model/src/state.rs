//! [`MemoryState`]: everything the model carries from one token to the next (MODEL.md section
//! 4). Its size does not depend on how many tokens were read.

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::attention::Gating;
use crate::block::readers;
use crate::config::Config;
use crate::error::{invalid_state, Result};
use crate::mixer::MixerState;
use crate::pool::{LayerPool, Slot};

/// A note and how much a token attended to it (mean over heads).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoteWeight {
    /// The layer whose pool holds the note.
    pub layer: usize,
    /// Absolute position of the token that wrote the note.
    pub position: u64,
    /// Attention weight in [0, 1]; the weights of one read sum to 1 (or 0 if nothing was seen).
    pub weight: f32,
}

/// What the last token of the last [`crate::MemMamba::read`] attended to in one layer, per batch
/// row: only the notes it could see (committed pool slots and earlier notes of its chunk).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerAttention {
    /// Cross-token attention over this layer's notes.
    pub token: Vec<Vec<NoteWeight>>,
    /// Cross-layer attention over the pools of the last p layers (empty on other layers).
    pub cross: Vec<Vec<NoteWeight>>,
}

/// One layer's part of the state.
#[derive(Debug, Clone)]
pub(crate) struct LayerState {
    pub(crate) mixer: MixerState,
    /// None with notes off.
    pub(crate) pool: Option<LayerPool>,
}

/// The reading state of a batch of documents: per layer the mixer's conv and SSM states, the
/// summary pool (slots with note keys/values, log-scores, positions, valid) and the uncommitted
/// notes of the current chunk (fewer than C), plus the number of tokens read and the gate
/// counters. Create it with [`crate::MemMamba::new_state`] or [`MemoryState::new`], advance it
/// with [`crate::MemMamba::read`] / [`crate::MemMamba::step`], persist it with
/// [`MemoryState::save`] / [`MemoryState::load`].
#[derive(Debug, Clone)]
pub struct MemoryState {
    pub(crate) fingerprint: String,
    pub(crate) batch: usize,
    pub(crate) tokens_read: u64,
    pub(crate) gating: Gating,
    pub(crate) gate_reads: u64,
    pub(crate) gate_skips: u64,
    pub(crate) layers: Vec<LayerState>,
    pub(crate) attention: Vec<LayerAttention>,
}

impl MemoryState {
    /// The state before the first token: zero mixer states, empty pools, sparse gating.
    pub fn new(cfg: &Config, batch: usize, device: &Device) -> Result<Self> {
        cfg.validate()?;
        if batch == 0 {
            return Err(invalid_state("the batch size must be at least 1"));
        }
        let (di, f32) = (cfg.d_inner(), DType::F32);
        let layers = (0..cfg.n_layer)
            .map(|l| {
                let mixer = MixerState {
                    conv: Tensor::zeros((batch, di, cfg.d_conv - 1), f32, device)?,
                    ssm: Tensor::zeros((batch, di, cfg.d_state), f32, device)?,
                };
                let pool = if cfg.notes {
                    let n = readers(cfg, l);
                    Some(LayerPool::new(
                        batch,
                        cfg.pool_slots,
                        n,
                        cfg.d_note,
                        device,
                    )?)
                } else {
                    None
                };
                Ok(LayerState { mixer, pool })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            fingerprint: cfg.fingerprint(),
            batch,
            tokens_read: 0,
            gating: Gating::Sparse,
            gate_reads: 0,
            gate_skips: 0,
            layers,
            attention: vec![LayerAttention::default(); cfg.n_layer],
        })
    }

    /// The same state with another gating mode (see [`Gating`]).
    pub fn with_gating(mut self, gating: Gating) -> Self {
        self.gating = gating;
        self
    }

    /// How the gates are applied when this state reads.
    pub fn gating(&self) -> Gating {
        self.gating
    }

    /// Fingerprint of the [`Config`] this state belongs to.
    pub fn config_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Batch size B.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens read so far (per batch row); the next token's absolute position.
    pub fn tokens_read(&self) -> u64 {
        self.tokens_read
    }

    /// Number of layers.
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    /// Gate applications so far under [`Gating::Sparse`] and how many skipped the read.
    pub fn gate_counts(&self) -> (u64, u64) {
        (self.gate_reads, self.gate_skips)
    }

    /// Fraction of gate applications that skipped the read (`g < tau2`), if any were made.
    pub fn skip_rate(&self) -> Option<f64> {
        (self.gate_reads > 0).then(|| self.gate_skips as f64 / self.gate_reads as f64)
    }

    /// The committed pool slots of `layer` for batch row `batch` (None with notes off or out of
    /// range). Valid slots carry the source position of their note, which maps back to a passage.
    pub fn pool_slots(&self, layer: usize, batch: usize) -> Option<&[Slot]> {
        let pool = self.layers.get(layer)?.pool.as_ref()?;
        pool.slots.get(batch).map(Vec::as_slice)
    }

    /// Tokens of the current chunk read but not committed yet (`tokens_read % C`).
    pub fn pending_len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.pool.as_ref())
            .map_or(0, LayerPool::pending_len)
    }

    /// What the last token of the last read attended to in `layer` (empty before any read and
    /// after [`MemoryState::load`]).
    pub fn attention(&self, layer: usize) -> Option<&LayerAttention> {
        self.attention.get(layer)
    }

    /// Cuts the state off the autograd graph of the training forward that produced it
    /// ([`crate::MemMamba::forward_from`]): the next sequence starts from the same values, and
    /// its gradient stops here (truncated backpropagation through the document).
    pub fn detach(&mut self) {
        self.visit_tensors(|_, t| {
            *t = t.detach();
            Ok(())
        })
        .expect("detaching tensors cannot fail");
    }

    /// Zeroes the mixers' conv and SSM states of the batch rows marked in `rows` and keeps their
    /// pools: what such a row read before survives only in its notes. Training does this between
    /// sequences of a document, so that answering from the pool, rather than from the recurrent
    /// state, is what lowers the loss there.
    pub fn forget_recurrence(&mut self, rows: &[bool]) -> Result<()> {
        if rows.len() != self.batch {
            return Err(invalid_state(format!(
                "the state holds {} documents, the rows to forget {}",
                self.batch,
                rows.len()
            )));
        }
        if !rows.contains(&true) {
            return Ok(());
        }
        let Some(first) = self.layers.first() else {
            return Ok(());
        };
        let keep: Vec<f32> = rows.iter().map(|&f| if f { 0.0 } else { 1.0 }).collect();
        let keep = Tensor::from_vec(keep, (self.batch, 1, 1), first.mixer.ssm.device())?;
        for layer in &mut self.layers {
            layer.mixer.conv = layer.mixer.conv.broadcast_mul(&keep)?;
            layer.mixer.ssm = layer.mixer.ssm.broadcast_mul(&keep)?;
        }
        Ok(())
    }

    /// Calls `f` with the name (as in the saved file) and a mutable reference of every tensor.
    pub(crate) fn visit_tensors(
        &mut self,
        mut f: impl FnMut(String, &mut Tensor) -> Result<()>,
    ) -> Result<()> {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            f(format!("layers.{l}.conv"), &mut layer.mixer.conv)?;
            f(format!("layers.{l}.ssm"), &mut layer.mixer.ssm)?;
            let Some(pool) = &mut layer.pool else {
                continue;
            };
            let sets = [
                ("pool", Some(&mut pool.pool)),
                ("pending", pool.pending.as_mut()),
            ];
            for (part, set) in sets {
                let Some(set) = set else { continue };
                f(format!("layers.{l}.{part}.log_scores"), &mut set.log_scores)?;
                for (r, (k, v)) in set.kv.iter_mut().enumerate() {
                    f(format!("layers.{l}.{part}.{r}.keys"), k)?;
                    f(format!("layers.{l}.{part}.{r}.values"), v)?;
                }
            }
        }
        Ok(())
    }

    /// The state's tensors, named as in the saved file.
    pub(crate) fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let mut copy = self.clone();
        copy.visit_tensors(|name, t| {
            out.push((name, t.clone()));
            Ok(())
        })
        .expect("collecting tensors cannot fail");
        out
    }

    /// Bytes of memory the state holds: its tensors plus the host slot table (log-score, position,
    /// valid per slot) and pending log-scores. Constant in the number of tokens read, up to the
    /// pending notes of the current chunk (zero at a chunk boundary).
    pub fn size_bytes(&self) -> usize {
        let tensors: usize = self
            .tensors()
            .iter()
            .map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes())
            .sum();
        let host: usize = self
            .layers
            .iter()
            .filter_map(|l| l.pool.as_ref())
            .map(|p| {
                let slots: usize = p.slots.iter().map(Vec::len).sum();
                let pending: usize = p.pending_log_scores.iter().map(Vec::len).sum();
                slots * (4 + 8 + 1) + pending * 4
            })
            .sum();
        tensors + host
    }
}
