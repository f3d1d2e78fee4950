//! The note reads of a block of tokens, all of its chunks at once.
//!
//! What a token at position t sees is fixed by the importance scores alone: the pool as
//! committed at the start of t's chunk (a function of the state's slots and the scores of the
//! tokens before the chunk, under the admission policy) and the noted tokens of its chunk before
//! t. So each layer's pool is replayed on the host over the block, and every chunk's queries
//! attend over K + C notes gathered from one table: the state's committed pool, its pending notes
//! (the start of the first chunk), the block's notes and padding to whole chunks. That is a fixed
//! number of batched ops per layer, for training (from an empty state) and for streaming alike.

use candle_core::{DType, IndexOp, Tensor};
use memmamba_kernels::gather_rows;
use memmamba_kernels::transfer::to_device;

use crate::attention::NoteAttention;
use crate::config::Config;
use crate::error::{invalid_state, Result};
use crate::pool::{admission_floor, admit, is_noted, LayerPool, NoteSet, Slot};
use crate::state::NoteWeight;

/// Where a block sits in the chunk grid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    /// Tokens of the first chunk read before the block (the state's pending notes).
    pub pending: usize,
    /// Tokens in the block.
    pub len: usize,
    /// Chunk length C.
    pub chunk: usize,
    /// Absolute position of the first chunk's first token.
    pub first: u64,
}

impl Grid {
    /// The grid of `len` tokens read after `tokens_read` tokens, with chunks of `chunk`.
    pub(crate) fn new(tokens_read: u64, len: usize, chunk: usize) -> Self {
        let pending = (tokens_read % chunk as u64) as usize;
        Self {
            pending,
            len,
            chunk,
            first: tokens_read - pending as u64,
        }
    }

    /// Pending and block tokens together.
    fn total(&self) -> usize {
        self.pending + self.len
    }

    /// Number of chunks the pending and block tokens touch.
    pub(crate) fn chunks(&self) -> usize {
        self.total().div_ceil(self.chunk)
    }

    /// Tokens of whole chunks.
    pub(crate) fn padded(&self) -> usize {
        self.chunks() * self.chunk
    }

    /// Tokens in chunks that end inside the block (and are committed by it).
    fn committed(&self) -> usize {
        self.total() / self.chunk * self.chunk
    }

    /// `x` (B, len, d) placed at the block's rows of the padded grid (B, padded, d), zeros
    /// elsewhere.
    pub(crate) fn place(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, d) = x.dims3()?;
        let zeros = |n: usize| Tensor::zeros((b, n, d), x.dtype(), x.device());
        let mut parts = Vec::with_capacity(3);
        if self.pending > 0 {
            parts.push(zeros(self.pending)?);
        }
        parts.push(x.clone());
        if self.padded() > self.total() {
            parts.push(zeros(self.padded() - self.total())?);
        }
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// The block's rows (B, len, d) of `x` (B, padded, d).
    pub(crate) fn block(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.narrow(1, self.pending, self.len)?)
    }
}

/// One layer's notes over a block, as its readers see them, and the pool replayed over it.
#[derive(Debug, Clone)]
pub(crate) struct BlockNotes {
    layer: usize,
    grid: Grid,
    /// `ln tau1`: a token whose log-score is above it writes a note.
    ln_tau1: f64,
    /// Per reader: keys, values and log-score side by side, (B, K + padded, 2 d_note + 1): the
    /// committed pool's K slots, then the grid's tokens (pending, block, zero padding).
    tables: Vec<Tensor>,
    /// Log-scores of the grid's tokens, per batch row (padding reads -inf: never noted).
    log_scores: Vec<Vec<f32>>,
    /// Per batch row, chunk and slot, the table row that the slot holds while the chunk is
    /// read (an empty slot points at row 0; the mask hides it): (B, nc * K), u32.
    slot_source: Tensor,
    /// Which of its K + C notes each of a chunk's C tokens may read, 0 or 1:
    /// (B * nc, C, K + C). A token sees the pool slots that hold a note and the noted tokens
    /// before it in its chunk (padding never writes a note).
    visible: Tensor,
    /// The slots as the last chunk sees them, per batch row (for tracing).
    last_slots: Vec<Vec<Slot>>,
    /// The slots after the block's commits and their table rows, per batch row.
    final_slots: Vec<Vec<(Slot, u32)>>,
}

impl BlockNotes {
    /// Lays out layer `layer`'s notes for a block on `grid`: `pool` is the layer's memory
    /// before the block, `new` the block's notes (log-scores and one key/value pair per reader,
    /// in `pool`'s reader order) and `log_scores` their log-scores per batch row.
    pub(crate) fn new(
        cfg: &Config,
        layer: usize,
        grid: Grid,
        pool: &LayerPool,
        new: &NoteSet,
        log_scores: &[Vec<f32>],
    ) -> Result<Self> {
        let (k, c) = (cfg.pool_slots, cfg.chunk);
        let (batch, _) = new.log_scores.dims2()?;
        let parts: Vec<&NoteSet> = [Some(&pool.pool), pool.pending.as_ref(), Some(new)]
            .into_iter()
            .flatten()
            .collect();
        let notes = NoteSet::cat(&parts)?;
        let pad = grid.padded() - grid.total();
        let tables = notes
            .kv
            .iter()
            .map(|(keys, values)| {
                let table = Tensor::cat(&[keys, values, &notes.log_scores.unsqueeze(2)?], 2)?;
                Ok(if pad > 0 {
                    let d = table.dim(2)?;
                    let zeros = Tensor::zeros((batch, pad, d), DType::F32, table.device())?;
                    Tensor::cat(&[&table, &zeros], 1)?
                } else {
                    table
                })
            })
            .collect::<Result<_>>()?;
        let log_scores: Vec<Vec<f32>> = pool
            .pending_log_scores
            .iter()
            .zip(log_scores)
            .map(|(pending, new)| {
                let mut row = pending.clone();
                row.extend_from_slice(new);
                row.resize(grid.padded(), f32::NEG_INFINITY);
                row
            })
            .collect();
        let nc = grid.chunks();
        let ln_tau1 = cfg.tau1.ln();
        let mut slot_source = Vec::with_capacity(batch * nc * k);
        let mut pool_seen = Vec::with_capacity(batch * nc * k);
        let mut own_seen = Vec::with_capacity(batch * nc * c);
        let mut last_slots = Vec::with_capacity(batch);
        let mut final_slots = Vec::with_capacity(batch);
        for (row, start_slots) in log_scores.iter().zip(&pool.slots) {
            let mut slots: Vec<(Slot, u32)> =
                start_slots.iter().zip(0..).map(|(&s, i)| (s, i)).collect();
            for i in 0..nc {
                slot_source.extend(slots.iter().map(|&(_, source)| source));
                if i + 1 == nc {
                    last_slots.push(slots.iter().map(|&(s, _)| s).collect());
                }
                let chunk = i * c..(i + 1) * c;
                let real = |t: usize| t < grid.total() && is_noted(row[t], ln_tau1);
                let flag = |b: bool| f32::from(u8::from(b));
                pool_seen.extend(slots.iter().map(|(slot, _)| flag(slot.valid)));
                own_seen.extend(chunk.clone().map(|t| flag(real(t))));
                if chunk.end > grid.committed() {
                    continue;
                }
                // Commit chunk i: its noted tokens in position order, as MODEL.md says.
                let mut table: Vec<Slot> = slots.iter().map(|&(s, _)| s).collect();
                let mut floor = admission_floor(&table, cfg.pool_policy);
                for t in chunk.filter(|&t| real(t)) {
                    if floor.is_some_and(|floor| row[t] <= floor) {
                        continue;
                    }
                    if let Some(slot) =
                        admit(&mut table, row[t], grid.first + t as u64, cfg.pool_policy)
                    {
                        slots[slot] = (table[slot], (k + t) as u32);
                        floor = admission_floor(&table, cfg.pool_policy);
                    }
                }
            }
            final_slots.push(slots);
        }
        let device = new.log_scores.device();
        Ok(Self {
            layer,
            grid,
            ln_tau1,
            tables,
            log_scores,
            slot_source: to_device(slot_source, &[batch, nc * k], device)?,
            visible: visibility(pool_seen, own_seen, batch * nc, (k, c), device)?,
            last_slots,
            final_slots,
        })
    }

    /// The layer's memory after the block: the committed slots gathered from the table, and
    /// the notes of the last chunk if the block ends inside it.
    pub(crate) fn commit(&self, pool: &mut LayerPool) -> Result<()> {
        let (batch, rows, _) = self.tables[0].dims3()?;
        let k = pool.slots[0].len();
        let index: Vec<u32> = self
            .final_slots
            .iter()
            .enumerate()
            .flat_map(|(b, slots)| slots.iter().map(move |&(_, s)| (b * rows) as u32 + s))
            .collect();
        let index = to_device(index, &[batch * k], self.tables[0].device())?;
        let gathered: Vec<Tensor> = self
            .tables
            .iter()
            .map(|t| {
                let d = t.dim(2)?;
                Ok(t.reshape((batch * rows, d))?
                    .index_select(&index, 0)?
                    .reshape((batch, k, d))?)
            })
            .collect::<Result<_>>()?;
        pool.pool = split(&gathered)?;
        let (from, to) = (self.grid.committed(), self.grid.total());
        pool.pending = if to > from {
            let tail: Vec<Tensor> = self
                .tables
                .iter()
                .map(|t| t.narrow(1, k + from, to - from))
                .collect::<candle_core::Result<_>>()?;
            Some(split(&tail)?)
        } else {
            None
        };
        pool.pending_log_scores = self
            .log_scores
            .iter()
            .map(|row| row[from..to].to_vec())
            .collect();
        pool.slots = self
            .final_slots
            .iter()
            .map(|slots| slots.iter().map(|&(s, _)| s).collect())
            .collect();
        Ok(())
    }

    /// Reader `reader`'s notes gathered per chunk (its K pool slots, then its C tokens): keys,
    /// values and log-score side by side, (B * nc, K + C, 2 d_note + 1). The pool slots are
    /// gathered with [`gather_rows`], whose backward is one scatter pass (candle's
    /// `index_select` backward took most of a training step on a GPU, and a one-hot selection
    /// matrix grows with the square of the block).
    fn gathered(&self, reader: usize) -> Result<Tensor> {
        let table = &self.tables[reader];
        let (batch, rows, width) = table.dims3()?;
        let (chunks, c, seen) = self.visible.dims3()?;
        let k = seen - c;
        let offsets = (0..batch as u32)
            .map(|b| b * rows as u32)
            .collect::<Vec<_>>();
        let offsets = to_device(offsets, &[batch, 1], table.device())?;
        let index = self.slot_source.broadcast_add(&offsets)?.flatten_all()?;
        let pool = gather_rows(&table.reshape((batch * rows, width))?, &index)?;
        let own = table.narrow(1, k, rows - k)?.reshape((chunks, c, width))?;
        Ok(Tensor::cat(&[&pool.reshape((chunks, k, width))?, &own], 1)?)
    }

    /// The notes the block's last token could see, with their attention weights `weights`
    /// (B, K + C) from its row: per batch row, only the visible ones.
    fn last_token(&self, weights: &[Vec<f32>]) -> Vec<Vec<NoteWeight>> {
        let c = self.grid.chunk;
        let last = self.grid.total() - 1;
        let chunk_start = last / c * c;
        weights
            .iter()
            .zip(&self.last_slots)
            .zip(&self.log_scores)
            .map(|((w, slots), log_scores)| {
                let pool = slots
                    .iter()
                    .zip(w)
                    .filter(|(s, _)| s.valid)
                    .map(|(s, &w)| (s.position, w));
                let own = (chunk_start..last)
                    .filter(|&t| is_noted(log_scores[t], self.ln_tau1))
                    .map(|t| (self.grid.first + t as u64, w[slots.len() + t - chunk_start]));
                pool.chain(own)
                    .map(|(position, weight)| NoteWeight {
                        layer: self.layer,
                        position,
                        weight,
                    })
                    .collect()
            })
            .collect()
    }
}

/// Which of its K + C notes each of a chunk's C tokens may read, (rows, C, K + C) of 0 or 1, from
/// what all the tokens of each of `rows` chunks see alike: the flags of the pool slots that hold
/// a note (`pool_seen`, rows x K) and of the chunk's noted tokens (`own_seen`, rows x C), of
/// which a token sees those before it. Only the flags cross from the host to the device (with
/// [`to_device`], which on a GPU does not wait for the work queued): the whole mask, a million
/// values per layer for a GPU block, was built on the host while the GPU waited.
fn visibility(
    pool_seen: Vec<f32>,
    own_seen: Vec<f32>,
    rows: usize,
    (k, c): (usize, usize),
    device: &candle_core::Device,
) -> Result<Tensor> {
    let pool = to_device(pool_seen, &[rows, 1, k], device)?.broadcast_as((rows, c, k))?;
    let before: Vec<f32> = (0..c)
        .flat_map(|s| (0..c).map(move |v| f32::from(u8::from(v < s))))
        .collect();
    let own = to_device(own_seen, &[rows, 1, c], device)?.broadcast_mul(&to_device(
        before,
        &[1, c, c],
        device,
    )?)?;
    Ok(Tensor::cat(&[&pool.contiguous()?, &own], 2)?)
}

/// Keys, values and log-scores side by side (B, V, 2 d + 1), per reader, as a [`NoteSet`].
fn split(tables: &[Tensor]) -> Result<NoteSet> {
    let d = (tables[0].dim(2)? - 1) / 2;
    let kv = tables
        .iter()
        .map(|t| {
            Ok((
                t.narrow(2, 0, d)?.contiguous()?,
                t.narrow(2, d, d)?.contiguous()?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(NoteSet {
        log_scores: tables[0].narrow(2, 2 * d, 1)?.squeeze(2)?.contiguous()?,
        kv,
    })
}

/// What one attention module read over a block.
pub(crate) struct Read {
    /// The read `c` for every grid row: (B, padded, d).
    pub c: Tensor,
    /// With tracing, what the block's last token attended to, per batch row.
    pub trace: Vec<Vec<NoteWeight>>,
}

/// Reads of every chunk of `u` (B, padded, d, the block placed on its grid) through `attn` over
/// reader `reader` of the notes of `layers` (one layer for cross-token attention, the window's
/// layers for cross-layer attention), each chunk seeing what MODEL.md shows it.
pub(crate) fn attend_chunks(
    attn: &NoteAttention,
    u: &Tensor,
    layers: &[&BlockNotes],
    reader: usize,
    differentiable: bool,
    trace: bool,
) -> Result<Read> {
    let (batch, padded, d) = u.dims3()?;
    let grid = layers[0].grid;
    let (nc, c) = (grid.chunks(), grid.chunk);
    let mut notes = Vec::with_capacity(layers.len());
    let mut visible = Vec::with_capacity(layers.len());
    for layer in layers {
        notes.push(layer.gathered(reader)?);
        visible.push(&layer.visible);
    }
    let queries = u.reshape((batch * nc, c, d))?;
    let (notes, visible) = (Tensor::cat(&notes, 1)?, Tensor::cat(&visible, 2)?);
    let (read, _) = attn.forward(&queries, &notes, &visible, differentiable, false)?;
    let trace = if trace {
        // Only the last token's weights are kept: its chunk attends again, alone (one chunk
        // per batch row), rather than the whole block keeping heads x C x (K + C) weights per
        // chunk (8 MiB for a CPU block's cross-layer read) for one row of them.
        let last = grid.total() - 1;
        let chunk_rows: Vec<u32> = (0..batch).map(|b| (b * nc + last / c) as u32).collect();
        let rows = to_device(chunk_rows, &[batch], u.device())?;
        let (_, weights) = attn.forward(
            &queries.index_select(&rows, 0)?,
            &notes.index_select(&rows, 0)?,
            &visible.index_select(&rows, 0)?,
            differentiable,
            true,
        )?;
        let weights =
            weights.ok_or_else(|| invalid_state("the note attention returned no weights"))?;
        // The last token's row, mean over heads: (B, sum of the layers' K + C).
        let row = weights.i((.., .., last % c))?.mean(1)?.to_vec2::<f32>()?;
        let mut per_row = vec![Vec::new(); batch];
        let mut offset = 0;
        for layer in layers {
            let w = layer.visible.dim(2)?;
            let part: Vec<Vec<f32>> = row.iter().map(|r| r[offset..offset + w].to_vec()).collect();
            for (all, notes) in per_row.iter_mut().zip(layer.last_token(&part)) {
                all.extend(notes);
            }
            offset += w;
        }
        per_row
    } else {
        Vec::new()
    };
    Ok(Read {
        c: read.reshape((batch, padded, d))?,
        trace,
    })
}
