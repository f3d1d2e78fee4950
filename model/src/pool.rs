//! The summary pool of one layer (MODEL.md sections 3.2 and 3.3): K slots committed every C
//! tokens, plus the notes written since the last commit.
//!
//! A note is kept as what its readers need: its log-score and, for every attention module that
//! reads this layer (the layer's own cross-token attention, and the cross-layer attention of the
//! layer above that reads it, if any), its key and value. Projecting once when the note is
//! written, instead of once per reading token, is what keeps a streamed token cheap. The slot
//! bookkeeping (score, source position, valid) lives on the host, where the admission policy runs.

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::MASKED;
use crate::config::PoolPolicy;

/// One slot of a summary pool as seen on the host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// Whether the slot holds a note.
    pub valid: bool,
    /// The note's importance score `s` (0 when empty).
    pub score: f32,
    /// The absolute index in the document of the token that wrote the note (0 when empty).
    pub position: u64,
}

impl Slot {
    /// An empty slot.
    pub const EMPTY: Slot = Slot {
        valid: false,
        score: 0.0,
        position: 0,
    };
}

/// Offers a note with `score` written at `position` to a pool's `slots` under `policy`.
///
/// An empty slot (the first one) is always taken. When the pool is full, `Priority` overwrites
/// the lowest-score slot if `score` is higher and otherwise drops the note; `Fifo` overwrites the
/// oldest slot. Ties between slots break towards the older position. Returns the slot written,
/// or None when the note was dropped.
pub fn admit(slots: &mut [Slot], score: f32, position: u64, policy: PoolPolicy) -> Option<usize> {
    let target = match slots.iter().position(|s| !s.valid) {
        Some(empty) => Some(empty),
        None => {
            let victim = match policy {
                PoolPolicy::Priority => slots.iter().enumerate().min_by(|(_, a), (_, b)| {
                    a.score
                        .total_cmp(&b.score)
                        .then(a.position.cmp(&b.position))
                }),
                PoolPolicy::Fifo => slots.iter().enumerate().min_by_key(|(_, s)| s.position),
            };
            victim
                .filter(|(_, v)| policy == PoolPolicy::Fifo || score > v.score)
                .map(|(k, _)| k)
        }
    };
    if let Some(k) = target {
        slots[k] = Slot {
            valid: true,
            score,
            position,
        };
    }
    target
}

/// Whether a token with importance `score` writes a note (`s > tau1`).
pub fn is_noted(score: f32, tau1: f64) -> bool {
    f64::from(score) > tau1
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

    /// The notes `start..start + len`.
    pub fn narrow(&self, start: usize, len: usize) -> Result<Self> {
        Ok(Self {
            log_scores: self.log_scores.narrow(1, start, len)?,
            kv: self
                .kv
                .iter()
                .map(|(k, v)| Ok((k.narrow(1, start, len)?, v.narrow(1, start, len)?)))
                .collect::<Result<_>>()?,
        })
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

    /// For batch row b and output note j, note `index[b * len + j] - b * V` of this set.
    fn gather(&self, index: &Tensor, len: usize) -> Result<Self> {
        let (batch, v) = self.log_scores.dims2()?;
        let rows = |t: &Tensor| -> Result<Tensor> {
            let d = t.dim(2)?;
            t.reshape((batch * v, d))?
                .index_select(index, 0)?
                .reshape((batch, len, d))
        };
        Ok(Self {
            log_scores: self
                .log_scores
                .reshape(batch * v)?
                .index_select(index, 0)?
                .reshape((batch, len))?,
            kv: self
                .kv
                .iter()
                .map(|(k, v)| Ok((rows(k)?, rows(v)?)))
                .collect::<Result<_>>()?,
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
    /// Importance scores of the pending tokens, per batch row.
    pub pending_scores: Vec<Vec<f32>>,
}

/// The notes one segment (a run of tokens inside one chunk) of a layer can see, with its mask.
#[derive(Debug, Clone)]
pub struct View {
    /// Committed pool, then pending notes, then the segment's own notes.
    pub notes: NoteSet,
    /// Per batch row, segment token s and note v: 1 if s may read v, else 0; (B, S, V) flat.
    pub mask: Vec<f32>,
    /// Per batch row, the source position of every note (meaningful where visible).
    pub positions: Vec<Vec<u64>>,
    /// The layer whose notes these are, repeated per note.
    pub layers: Vec<usize>,
    /// Segment length S.
    pub len: usize,
}

impl View {
    /// The views one after the other along the note axis (for cross-layer attention), keeping
    /// only the keys and values of reader `reader`, which become the result's reader 0.
    pub fn cat(views: &[&View], reader: usize) -> Result<View> {
        let batch = views[0].positions.len();
        let len = views[0].len;
        let widths: Vec<usize> = views.iter().map(|v| v.notes.len()).collect();
        let total: usize = widths.iter().sum();
        let mut mask = Vec::with_capacity(batch * len * total);
        for b in 0..batch {
            for s in 0..len {
                for (view, &w) in views.iter().zip(&widths) {
                    let row = (b * len + s) * w;
                    mask.extend_from_slice(&view.mask[row..row + w]);
                }
            }
        }
        let sets: Vec<NoteSet> = views
            .iter()
            .map(|v| NoteSet {
                log_scores: v.notes.log_scores.clone(),
                kv: vec![v.notes.kv[reader].clone()],
            })
            .collect();
        let sets: Vec<&NoteSet> = sets.iter().collect();
        Ok(View {
            notes: NoteSet::cat(&sets)?,
            mask,
            positions: (0..batch)
                .map(|b| views.iter().flat_map(|v| v.positions[b].clone()).collect())
                .collect(),
            layers: views.iter().flat_map(|v| v.layers.clone()).collect(),
            len,
        })
    }

    /// The mask as attention inputs: the additive bias (B, S, V), 0 where visible and
    /// [`MASKED`] elsewhere, and per token whether it sees any note (B, S) as 1 or 0.
    pub fn mask_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let batch = self.positions.len();
        let width = self.notes.len();
        let bias = self
            .mask
            .iter()
            .map(|&m| if m > 0.0 { 0.0 } else { MASKED })
            .collect();
        let seen = self
            .mask
            .chunks(width)
            .map(|row| f32::from(u8::from(row.iter().any(|&m| m > 0.0))))
            .collect();
        Ok((
            Tensor::from_vec(bias, (batch, self.len, width), device)?,
            Tensor::from_vec(seen, (batch, self.len), device)?,
        ))
    }
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
            pending_scores: vec![Vec::new(); batch],
        })
    }

    /// Number of pending (uncommitted) tokens.
    pub fn pending_len(&self) -> usize {
        self.pending.as_ref().map_or(0, NoteSet::len)
    }

    /// What a segment of `seg.len()` tokens starting at absolute position `start` sees: the
    /// committed pool's valid slots, the pending noted tokens and, causally, its own noted
    /// tokens before each one (`scores` per batch row decide which are noted).
    pub fn view(
        &self,
        layer: usize,
        seg: &NoteSet,
        scores: &[Vec<f32>],
        start: u64,
        tau1: f64,
    ) -> Result<View> {
        let parts: Vec<&NoteSet> = [Some(&self.pool), self.pending.as_ref(), Some(seg)]
            .into_iter()
            .flatten()
            .collect();
        let notes = NoteSet::cat(&parts)?;
        let (k, p, len) = (self.slots[0].len(), self.pending_len(), seg.len());
        let width = k + p + len;
        let pending_start = start - p as u64;
        let batch = self.slots.len();
        let mut mask = Vec::with_capacity(batch * len * width);
        let mut positions = Vec::with_capacity(batch);
        for (b, row_scores) in scores.iter().enumerate().take(batch) {
            let fixed: Vec<f32> = self.slots[b]
                .iter()
                .map(|s| f32::from(u8::from(s.valid)))
                .chain(
                    self.pending_scores[b]
                        .iter()
                        .map(|&s| f32::from(u8::from(is_noted(s, tau1)))),
                )
                .collect();
            for s in 0..len {
                mask.extend_from_slice(&fixed);
                mask.extend(
                    (0..len).map(|j| f32::from(u8::from(j < s && is_noted(row_scores[j], tau1)))),
                );
            }
            positions.push(
                self.slots[b]
                    .iter()
                    .map(|s| s.position)
                    .chain((0..(p + len) as u64).map(|i| pending_start + i))
                    .collect(),
            );
        }
        Ok(View {
            notes,
            mask,
            positions,
            layers: vec![layer; width],
            len,
        })
    }

    /// Appends a segment's notes and scores to the pending notes.
    pub fn append(&mut self, seg: NoteSet, scores: Vec<Vec<f32>>) -> Result<()> {
        self.pending = Some(match self.pending.take() {
            None => seg,
            Some(p) => NoteSet::cat(&[&p, &seg])?,
        });
        for (row, new) in self.pending_scores.iter_mut().zip(scores) {
            row.extend(new);
        }
        Ok(())
    }

    /// Ends a chunk whose first token is at `chunk_start`: offers its noted tokens to the pool
    /// in position order under `policy`, then clears the pending notes.
    pub fn commit(&mut self, chunk_start: u64, policy: PoolPolicy, tau1: f64) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let (k, p) = (self.pool.len(), pending.len());
        let mut index = Vec::with_capacity(self.slots.len() * k);
        for (b, (slots, scores)) in self.slots.iter_mut().zip(&self.pending_scores).enumerate() {
            let mut source: Vec<usize> = (0..k).collect();
            for (i, &score) in scores.iter().enumerate() {
                if is_noted(score, tau1) {
                    if let Some(slot) = admit(slots, score, chunk_start + i as u64, policy) {
                        source[slot] = k + i;
                    }
                }
            }
            index.extend(source.iter().map(|&s| (b * (k + p) + s) as u32));
        }
        let index = Tensor::new(index, self.pool.log_scores.device())?;
        self.pool = NoteSet::cat(&[&self.pool, &pending])?.gather(&index, k)?;
        for row in &mut self.pending_scores {
            row.clear();
        }
        Ok(())
    }
}
