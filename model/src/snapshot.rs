//! Saving and loading a [`MemoryState`]: one safetensors file whose tensors are the state's
//! tensors (f32) and whose metadata holds, under [`STATE_KEY`], a small JSON header: format
//! version, config fingerprint, batch, tokens read, gating and gate counters, and per layer the
//! slot table (valid, log-score, position) and the log-scores of the pending notes. The chunk
//! phase is `tokens_read % C`; the pending tensors hold exactly that many notes.
//!
//! Version 1 kept scores `s` where version 2 keeps `ln s` (the pool ranks by them, see
//! [`crate::pool`]); a version 1 state loads with `ln s` of its scores.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::attention::Gating;
use crate::config::Config;
use crate::error::{invalid_state, ModelError, Result};
use crate::pool::{NoteSet, Slot};
use crate::state::MemoryState;

/// Metadata key of the JSON header in a saved state.
pub const STATE_KEY: &str = "memmamba.state";

/// Version of the saved-state format this build writes (it reads this one and version 1).
pub const STATE_FORMAT_VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct Header<L = LayerHeader> {
    format_version: u32,
    config_fingerprint: String,
    batch: usize,
    tokens_read: u64,
    gating: Gating,
    gate_reads: u64,
    gate_skips: u64,
    layers: Vec<L>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerHeader {
    /// Per batch row, the K slots; empty with notes off.
    slots: Vec<Vec<Slot>>,
    /// Per batch row, the log-scores of the pending notes; empty with notes off.
    pending_log_scores: Vec<Vec<f32>>,
}

/// A layer's header in format version 1: scores where version 2 has log-scores.
#[derive(Debug, Deserialize)]
struct LayerHeaderV1 {
    slots: Vec<Vec<SlotV1>>,
    pending_scores: Vec<Vec<f32>>,
}

#[derive(Debug, Deserialize)]
struct SlotV1 {
    valid: bool,
    score: f32,
    position: u64,
}

impl From<LayerHeaderV1> for LayerHeader {
    fn from(v1: LayerHeaderV1) -> Self {
        let slots = v1.slots.into_iter().map(|row| {
            row.into_iter()
                .map(|s| Slot {
                    valid: s.valid,
                    log_score: if s.valid { s.score.ln() } else { 0.0 },
                    position: s.position,
                })
                .collect()
        });
        let pending = v1
            .pending_scores
            .into_iter()
            .map(|row| row.into_iter().map(f32::ln).collect());
        LayerHeader {
            slots: slots.collect(),
            pending_log_scores: pending.collect(),
        }
    }
}

/// Reads the JSON header of either format version as version 2.
fn parse_header(json: &str) -> Result<Header> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version = serde_json::from_str::<Version>(json)?.format_version;
    match version {
        STATE_FORMAT_VERSION => Ok(serde_json::from_str(json)?),
        1 => {
            let h: Header<LayerHeaderV1> = serde_json::from_str(json)?;
            Ok(Header {
                format_version: STATE_FORMAT_VERSION,
                config_fingerprint: h.config_fingerprint,
                batch: h.batch,
                tokens_read: h.tokens_read,
                gating: h.gating,
                gate_reads: h.gate_reads,
                gate_skips: h.gate_skips,
                layers: h.layers.into_iter().map(LayerHeader::from).collect(),
            })
        }
        other => Err(invalid_state(format!(
            "format version {other} (this build reads versions 1 to {STATE_FORMAT_VERSION})"
        ))),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl MemoryState {
    /// The state as safetensors bytes with its JSON header (see the module docs).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = Header {
            format_version: STATE_FORMAT_VERSION,
            config_fingerprint: self.fingerprint.clone(),
            batch: self.batch,
            tokens_read: self.tokens_read,
            gating: self.gating,
            gate_reads: self.gate_reads,
            gate_skips: self.gate_skips,
            layers: self
                .layers
                .iter()
                .map(|l| LayerHeader {
                    slots: l.pool.as_ref().map_or(Vec::new(), |p| p.slots.clone()),
                    pending_log_scores: l
                        .pool
                        .as_ref()
                        .map_or(Vec::new(), |p| p.pending_log_scores.clone()),
                })
                .collect(),
        };
        let tensors = self
            .tensors()
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(DType::F32)?.contiguous()?)))
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([(STATE_KEY.to_string(), serde_json::to_string(&header)?)]);
        Ok(safetensors::serialize(tensors, Some(metadata))?)
    }

    /// Writes the state to `path` (see [`MemoryState::to_bytes`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|e| io_error(path, e))
    }

    /// Reads a state saved by [`MemoryState::to_bytes`] for a model with config `cfg`.
    ///
    /// A state made with another configuration is a [`ModelError::ConfigMismatch`]; a damaged
    /// one, one of another format version, or one whose tensors or tables do not have the
    /// shapes `cfg` implies is a [`ModelError::Invalid`].
    pub fn from_bytes(cfg: &Config, bytes: &[u8], device: &Device) -> Result<Self> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)?;
        let json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(STATE_KEY))
            .ok_or_else(|| invalid_state(format!("no `{STATE_KEY}` header")))?;
        let header = parse_header(json)?;
        if header.config_fingerprint != cfg.fingerprint() {
            return Err(ModelError::ConfigMismatch {
                what: "memory state",
                expected: cfg.fingerprint(),
                found: header.config_fingerprint,
            });
        }
        if header.layers.len() != cfg.n_layer {
            return Err(invalid_state(format!(
                "{} layers in the header, the config has {}",
                header.layers.len(),
                cfg.n_layer
            )));
        }
        // Before allocating a state of the header's batch: the file must hold its first SSM
        // state, `batch x d_inner x d_state` f32 values (never empty), so the state allocated
        // is at most a fixed multiple of the file's size.
        let ssm_dims = metadata
            .tensors()
            .get("layers.0.ssm")
            .map(|info| info.shape.clone());
        if ssm_dims != Some(vec![header.batch, cfg.d_inner(), cfg.d_state]) {
            return Err(invalid_state(format!(
                "the header says batch {}, the tensor `layers.0.ssm` is {ssm_dims:?}",
                header.batch
            )));
        }
        let mut state = MemoryState::new(cfg, header.batch, device)?;
        let pending = (header.tokens_read % cfg.chunk as u64) as usize;
        for (l, (layer, lh)) in state.layers.iter_mut().zip(header.layers).enumerate() {
            let Some(pool) = &mut layer.pool else {
                if !lh.slots.is_empty() || !lh.pending_log_scores.is_empty() {
                    return Err(invalid_state(format!(
                        "layer {l} has notes, the config none"
                    )));
                }
                continue;
            };
            let batch = header.batch;
            let rows_ok = |lens: Vec<usize>, len: usize| {
                lens.len() == batch && lens.iter().all(|&n| n == len)
            };
            if !rows_ok(lh.slots.iter().map(Vec::len).collect(), cfg.pool_slots) {
                return Err(invalid_state(format!(
                    "layer {l}: the slot table is not {} x {}",
                    header.batch, cfg.pool_slots
                )));
            }
            if !rows_ok(
                lh.pending_log_scores.iter().map(Vec::len).collect(),
                pending,
            ) {
                return Err(invalid_state(format!(
                    "layer {l}: expected {pending} pending log-scores per row after {} tokens",
                    header.tokens_read
                )));
            }
            let late = lh.slots.iter().flatten().find(|s| {
                let log_score_ok = s.log_score.is_finite() && s.log_score <= 0.0;
                s.valid && (s.position >= header.tokens_read || !log_score_ok)
            });
            if let Some(slot) = late {
                return Err(invalid_state(format!("layer {l}: bad slot {slot:?}")));
            }
            pool.slots = lh.slots;
            pool.pending_log_scores = lh.pending_log_scores;
            if pending > 0 {
                let readers = pool.pool.kv.len();
                pool.pending = Some(NoteSet::zeros(
                    header.batch,
                    pending,
                    readers,
                    cfg.d_note,
                    device,
                )?);
            }
        }
        let mut loaded = candle_core::safetensors::load_buffer(bytes, device)?;
        state.visit_tensors(|name, slot| {
            let t = loaded
                .remove(&name)
                .ok_or_else(|| invalid_state(format!("missing tensor `{name}`")))?;
            if t.dims() != slot.dims() || t.dtype() != DType::F32 {
                return Err(invalid_state(format!(
                    "tensor `{name}` is {:?} {:?}, expected {:?} F32",
                    t.dtype(),
                    t.dims(),
                    slot.dims()
                )));
            }
            *slot = t;
            Ok(())
        })?;
        if let Some(extra) = loaded.keys().next() {
            return Err(invalid_state(format!("unexpected tensor `{extra}`")));
        }
        state.tokens_read = header.tokens_read;
        state.gating = header.gating;
        state.gate_reads = header.gate_reads;
        state.gate_skips = header.gate_skips;
        Ok(state)
    }

    /// Reads the state saved at `path` (see [`MemoryState::from_bytes`]).
    pub fn load(cfg: &Config, path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        Self::from_bytes(cfg, &bytes, device)
    }
}
