//! The summary pool of one layer (MODEL.md sections 3.2 and 3.3): K slots committed every C
//! tokens, plus the notes written since the last commit.
//!
//! A note is kept as what its readers need: its log-score and, for every attention module that
//! reads this layer (the layer's own cross-token attention, and the cross-layer attention of the
//! layer above that reads it, if any), its key and value. Projecting once when the note is
//! written, instead of once per reading token, is what keeps a streamed token cheap. The slot
//! bookkeeping (log-score, source position, valid) lives on the host, where the admission policy
//! runs. Notes are ranked by their log-scores `ln s`, not their scores: a trained scorer puts
//! many tokens past the logit where `s` rounds to 1.0 in f32, and a pool ranking by `s` would
//! see them all tied and stop taking notes.

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::PoolPolicy;

/// One slot of a summary pool as seen on the host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// Whether the slot holds a note.
    pub valid: bool,
    /// The note's importance as a log-score `ln s` (0 when empty).
    pub log_score: f32,
    /// The absolute index in the document of the token that wrote the note (0 when empty).
    pub position: u64,
}

impl Slot {
    /// An empty slot.
    pub const EMPTY: Slot = Slot {
        valid: false,
        log_score: 0.0,
        position: 0,
    };
}

/// Offers a note with log-score `log_score` written at `position` to a pool's `slots` under
/// `policy`.
///
/// An empty slot (the first one) is always taken. When the pool is full, `Priority` overwrites
/// the lowest-score slot if `log_score` is higher and otherwise drops the note; `Fifo` overwrites the
/// oldest slot. Ties between slots break towards the older position. Returns the slot written,
/// or None when the note was dropped.
pub fn admit(
    slots: &mut [Slot],
    log_score: f32,
    position: u64,
    policy: PoolPolicy,
) -> Option<usize> {
    let target = match slots.iter().position(|s| !s.valid) {
        Some(empty) => Some(empty),
        None => {
            let victim = match policy {
                PoolPolicy::Priority => slots.iter().enumerate().min_by(|(_, a), (_, b)| {
                    a.log_score
                        .total_cmp(&b.log_score)
                        .then(a.position.cmp(&b.position))
                }),
                PoolPolicy::Fifo => slots.iter().enumerate().min_by_key(|(_, s)| s.position),
            };
            victim
                .filter(|(_, v)| policy == PoolPolicy::Fifo || log_score > v.log_score)
                .map(|(k, _)| k)
        }
    };
    if let Some(k) = target {
        slots[k] = Slot {
            valid: true,
            log_score,
            position,
        };
    }
    target
}

/// The log-score a note must beat to enter `slots` under `policy`: under `Priority` the lowest
/// of a full pool (a note at or below it is dropped, and a full pool's lowest log-score only
/// rises), None while a slot is empty or under `Fifo` (every note gets in). Replaying a pool over
/// thousands of notes, this skips the search of [`admit`] for the notes it would drop.
pub fn admission_floor(slots: &[Slot], policy: PoolPolicy) -> Option<f32> {
    if policy == PoolPolicy::Fifo || slots.iter().any(|s| !s.valid) {
        return None;
    }
    slots.iter().map(|s| s.log_score).min_by(f32::total_cmp)
}

/// Whether a token with log-score `log_score` writes a note: `s > tau1`, as `ln s > ln_tau1`
/// (`ln tau1`, taken once by the caller: this runs for every token of a replay).
pub fn is_noted(log_score: f32, ln_tau1: f64) -> bool {
    f64::from(log_score) > ln_tau1
}

/// A run of notes as tensors: log-scores (B, V) and, per reader, keys and values (B, V, d_note).
#[derive(Debug, Clone)]
pub struct NoteSet {
    /// `ln s` of every note: (B, V).
    pub log_scores: Tensor,
    /// Per reading attention module: (keys, values), each (B, V, d_note).
    pub kv: Vec<(Tensor, Tensor)>,
}

impl NoteSet {
    /// `len` empty notes (zeros) for `readers` reading modules.
    pub fn zeros(
        batch: usize,
        len: usize,
        readers: usize,
        d_note: usize,
        device: &Device,
    ) -> Result<Self> {
        let z = Tensor::zeros((batch, len, d_note), DType::F32, device)?;
        Ok(Self {
            log_scores: Tensor::zeros((batch, len), DType::F32, device)?,
            kv: (0..readers).map(|_| (z.clone(), z.clone())).collect(),
        })
    }

    /// Number of notes V.
    pub fn len(&self) -> usize {
        self.log_scores.dim(1).unwrap_or(0)
    }

    /// Whether the set holds no note.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sets one after the other along the note axis.
    pub fn cat(sets: &[&NoteSet]) -> Result<Self> {
        let logs: Vec<&Tensor> = sets.iter().map(|s| &s.log_scores).collect();
        let readers = sets.first().map_or(0, |s| s.kv.len());
        let kv = (0..readers)
            .map(|r| {
                let ks: Vec<&Tensor> = sets.iter().map(|s| &s.kv[r].0).collect();
                let vs: Vec<&Tensor> = sets.iter().map(|s| &s.kv[r].1).collect();
                Ok((Tensor::cat(&ks, 1)?, Tensor::cat(&vs, 1)?))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            log_scores: Tensor::cat(&logs, 1)?,
            kv,
        })
    }
}

/// One layer's memory: the committed pool and the notes written since the last commit.
#[derive(Debug, Clone)]
pub struct LayerPool {
    /// The K committed slots as tensors.
    pub pool: NoteSet,
    /// Host bookkeeping of the K slots, per batch row.
    pub slots: Vec<Vec<Slot>>,
    /// Every token of the current chunk so far (noted or not), in order; None at a chunk start.
    pub pending: Option<NoteSet>,
    /// Log-scores of the pending tokens, per batch row.
    pub pending_log_scores: Vec<Vec<f32>>,
}

impl LayerPool {
    /// An empty pool of `slots` slots read by `readers` attention modules.
    pub fn new(
        batch: usize,
        slots: usize,
        readers: usize,
        d_note: usize,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            pool: NoteSet::zeros(batch, slots, readers, d_note, device)?,
            slots: vec![vec![Slot::EMPTY; slots]; batch],
            pending: None,
            pending_log_scores: vec![Vec::new(); batch],
        })
    }

    /// Number of pending (uncommitted) tokens.
    pub fn pending_len(&self) -> usize {
        self.pending.as_ref().map_or(0, NoteSet::len)
    }
}
