//! The training forward's note reads for all chunks of a sequence at once.
//!
//! Reading from an empty memory, what a token at position t of chunk i sees is fixed by the
//! importance scores alone: the pool as committed after chunk i - 1 (a function of the scores of
//! the tokens before chunk i, under the admission policy) and the noted tokens of chunk i before
//! t. So the pool's evolution is replayed on the host from the scores, once per layer, and each
//! chunk's queries attend over K + C gathered notes: its pool slots, then its own tokens. That is
//! a fixed number of batched ops per layer, where the streaming path ([`crate::MemMamba::read`])
//! issues dozens of small ops per chunk and layer. Both compute the same function (the
//! streaming tests check it).

use candle_core::{DType, Device, Tensor, D};

use crate::attention::{NoteAttention, MASKED};
use crate::config::Config;
use crate::error::Result;
use crate::pool::{admit, is_noted, Slot};

/// One layer's notes over a padded sequence of `nc` chunks, and what each chunk's queries see.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedNotes {
    /// `W_n u` for every (padded) token: (B, nc * C, d_note).
    pub notes: Tensor,
    /// `ln s` for every (padded) token: (B, nc * C).
    pub log_scores: Tensor,
    /// Per batch row, chunk and pool slot, the (padded) token whose note the slot holds when
    /// the chunk is read; an empty slot points at token 0 (the mask hides it). (B, nc * K), u32.
    slot_source: Tensor,
    /// 1 where the chunk's pool slot holds a note: (B * nc, 1, K).
    slot_valid: Tensor,
    /// 1 where the chunk's token writes a note (padding never does): (B * nc, 1, C).
    noted: Tensor,
}

impl ChunkedNotes {
    /// Replays the pool of one layer over a sequence of `len` real tokens whose padded notes,
    /// log-scores and importance `scores` (per batch row, at least `len` each) are given.
    pub(crate) fn new(
        cfg: &Config,
        notes: Tensor,
        log_scores: Tensor,
        scores: &[Vec<f32>],
        len: usize,
    ) -> Result<Self> {
        let (k, c) = (cfg.pool_slots, cfg.chunk);
        let (batch, padded) = log_scores.dims2()?;
        let nc = padded / c;
        let mut slot_source = Vec::with_capacity(batch * nc * k);
        let mut slot_valid = Vec::with_capacity(batch * nc * k);
        let mut noted = Vec::with_capacity(batch * nc * c);
        for row in scores {
            let mut slots = vec![Slot::EMPTY; k];
            for i in 0..nc {
                slot_source.extend(slots.iter().map(|s| s.position as u32));
                slot_valid.extend(slots.iter().map(|s| f32::from(u8::from(s.valid))));
                let chunk = i * c..(i + 1) * c;
                let real = |t: usize| t < len && is_noted(row[t], cfg.tau1);
                noted.extend(chunk.clone().map(|t| f32::from(u8::from(real(t)))));
                // Commit chunk i: its noted tokens in position order, as the streaming pool does.
                for t in chunk.filter(|&t| real(t)) {
                    admit(&mut slots, row[t], t as u64, cfg.pool_policy);
                }
            }
        }
        let device = notes.device();
        Ok(Self {
            slot_source: Tensor::from_vec(slot_source, (batch, nc * k), device)?,
            slot_valid: Tensor::from_vec(slot_valid, (batch * nc, 1, k), device)?,
            noted: Tensor::from_vec(noted, (batch * nc, 1, c), device)?,
            notes,
            log_scores,
        })
    }

    /// Number of chunks per sequence.
    fn chunks(&self) -> Result<usize> {
        Ok(self.noted.dim(0)? / self.log_scores.dim(0)?)
    }

    /// Which of its K + C notes each of a chunk's C tokens may read: (B * nc, C, K + C), 0 or 1.
    fn visibility(&self, causal: &Tensor) -> Result<Tensor> {
        let (rows, _, c) = self.noted.dims3()?;
        let k = self.slot_valid.dim(2)?;
        let pool = self.slot_valid.broadcast_as((rows, c, k))?;
        let own = causal.broadcast_mul(&self.noted)?;
        Ok(Tensor::cat(&[&pool, &own], 2)?)
    }

    /// This layer's notes as `attn` reads them, gathered per chunk (its K pool slots, then its
    /// C tokens): keys and values (B * nc, K + C, d_note) and log-scores (B * nc, K + C).
    ///
    /// The pool slots are gathered by multiplying with a one-hot selection matrix rather than
    /// by `index_select`: the backward pass of the latter is
    /// candle's `index_add`, whose CUDA kernel loops over all indices in one thread per output
    /// column and took most of a training step.
    fn gathered(&self, attn: &NoteAttention) -> Result<(Tensor, Tensor, Tensor)> {
        let (_, padded, d) = self.notes.dims3()?;
        let (rows, _, c) = self.noted.dims3()?;
        let k = self.slot_valid.dim(2)?;
        let (keys, values) = attn.project(&self.notes)?;
        // Keys, values and log-score side by side, so that one gather moves all three.
        let notes = Tensor::cat(&[&keys, &values, &self.log_scores.unsqueeze(2)?], 2)?;
        let width = 2 * d + 1;
        let tokens = Tensor::arange(0u32, padded as u32, notes.device())?;
        let select = self
            .slot_source
            .unsqueeze(2)?
            .broadcast_eq(&tokens.reshape((1, 1, padded))?)?
            .to_dtype(DType::F32)?;
        let pool = select.matmul(&notes)?;
        let all = Tensor::cat(
            &[
                &pool.reshape((rows, k, width))?,
                &notes.reshape((rows, c, width))?,
            ],
            1,
        )?;
        Ok((
            all.narrow(2, 0, d)?.contiguous()?,
            all.narrow(2, d, d)?.contiguous()?,
            all.narrow(2, 2 * d, 1)?.squeeze(2)?.contiguous()?,
        ))
    }
}

/// `1` where chunk token s may read chunk token j (j < s): (1, C, C).
fn strictly_causal(c: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..c * c)
        .map(|n| f32::from(u8::from(n % c < n / c)))
        .collect();
    Ok(Tensor::from_vec(mask, (1, c, c), device)?)
}

/// Reads of every chunk of `u` (B, nc * C, d) through `attn` over the notes of `layers` (one
/// layer for cross-token attention, the window's layers for cross-layer attention), each chunk
/// seeing what the streaming path would show it. Returns (B, nc * C, d).
pub(crate) fn attend_chunks(
    attn: &NoteAttention,
    u: &Tensor,
    layers: &[&ChunkedNotes],
    differentiable: bool,
) -> Result<Tensor> {
    let (batch, padded, d) = u.dims3()?;
    let nc = layers[0].chunks()?;
    let c = padded / nc;
    let causal = strictly_causal(c, u.device())?;
    let mut keys = Vec::with_capacity(layers.len());
    let mut values = Vec::with_capacity(layers.len());
    let mut logs = Vec::with_capacity(layers.len());
    let mut visible = Vec::with_capacity(layers.len());
    for layer in layers {
        let (k, v, l) = layer.gathered(attn)?;
        keys.push(k);
        values.push(v);
        logs.push(l);
        visible.push(layer.visibility(&causal)?);
    }
    let visible = Tensor::cat(&visible, 2)?;
    let bias = ((&visible - 1.0)? * f64::from(-MASKED))?;
    let seen = visible.max(D::Minus1)?;
    let (read, _) = attn.forward(
        &u.reshape((batch * nc, c, d))?,
        &Tensor::cat(&keys, 1)?,
        &Tensor::cat(&values, 1)?,
        &Tensor::cat(&logs, 1)?,
        &bias.to_dtype(DType::F32)?,
        &seen,
        differentiable,
    )?;
    Ok(read.reshape((batch, padded, d))?)
}
