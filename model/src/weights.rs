//! Weights files: safetensors with the VarBuilder names of [`MemMamba`] and the model's
//! [`Config`] as JSON in the metadata under [`CONFIG_KEY`]. Tensors may be f32, f16 or bf16, or,
//! for matrices, 8-bit quantised per row ([`MemMamba::quantized_weights_to_bytes`]): the shipped
//! model is stored that way, at a quarter of its f32 size.

use std::collections::HashMap;
use std::path::Path;
use std::sync::MutexGuard;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use safetensors::SafeTensors;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::model::MemMamba;

/// Metadata key of the configuration JSON in a weights file.
pub const CONFIG_KEY: &str = "memmamba.config";

/// Suffix of the tensor that holds the per-row scales of an 8-bit quantised matrix `name`:
/// the matrix is stored as u8 `q` and its rows are `(q - 128) * scale[row]`.
pub const QUANT_SCALE_SUFFIX: &str = ".q8_scale";

/// A matrix (rows, cols) as u8 codes and per-row f32 scales: `w ~ (q - 128) * scale`, with
/// `scale = max|w_row| / 127`, so every row keeps its largest weight exactly.
fn quantize_rows(w: &Tensor) -> Result<(Tensor, Tensor)> {
    let scale = (w.abs()?.max_keepdim(1)? / 127.0)?.clamp(f32::MIN_POSITIVE, f32::MAX)?;
    let q = (w.broadcast_div(&scale)?.round()? + 128.0)?.to_dtype(DType::U8)?;
    Ok((q, scale.squeeze(1)?))
}

/// The matrix `name` from its codes `q` (rows, cols) of u8 and `scale` (rows).
fn dequantize_rows(name: &str, q: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let rows = q.dims().first().copied().unwrap_or(0);
    if q.dtype() != DType::U8 || q.rank() != 2 || scale.dims() != [rows] {
        return Err(invalid(format!(
            "quantised tensor `{name}` must be u8 (rows, cols) with {rows} scales; found {:?} {:?} with scales {:?}",
            q.dtype(),
            q.dims(),
            scale.dims()
        )));
    }
    let scale = scale.to_dtype(DType::F32)?.unsqueeze(1)?;
    Ok((q.to_dtype(DType::F32)? - 128.0)?.broadcast_mul(&scale)?)
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(reason: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        what: "weights",
        reason: reason.into(),
    }
}

/// The variables of `varmap`, locked.
pub(crate) fn lock_vars(varmap: &VarMap) -> Result<MutexGuard<'_, HashMap<String, Var>>> {
    varmap
        .data()
        .lock()
        .map_err(|_| invalid("the variable map's lock is poisoned"))
}

impl MemMamba {
    /// Every weight by its name in the weights file, in name order: a copy of the values they
    /// have now, which training steps after this call leave as they are.
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let data = lock_vars(self.varmap())?;
        let mut named = data
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect::<Result<Vec<_>>>()?;
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(named)
    }

    /// `tensors` as safetensors bytes, with the configuration in the metadata.
    fn serialize(&self, tensors: Vec<(String, Tensor)>) -> Result<Vec<u8>> {
        let metadata = HashMap::from([(CONFIG_KEY.to_string(), self.config().to_json_string())]);
        Ok(safetensors::serialize(tensors, Some(metadata))?)
    }

    /// The weights as safetensors bytes, with the configuration in the metadata.
    pub fn weights_to_bytes(&self) -> Result<Vec<u8>> {
        self.serialize(self.named_weights()?)
    }

    /// [`MemMamba::weights_to_bytes`] with every matrix 8-bit quantised per row (see
    /// [`QUANT_SCALE_SUFFIX`]); vectors (norms, biases, `D`) stay f32. Loading dequantises.
    pub fn quantized_weights_to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors = Vec::new();
        for (name, w) in self.named_weights()? {
            if w.rank() == 2 {
                let (q, scale) = quantize_rows(&w.to_dtype(DType::F32)?)?;
                tensors.push((format!("{name}{QUANT_SCALE_SUFFIX}"), scale));
                tensors.push((name, q));
            } else {
                tensors.push((name, w));
            }
        }
        self.serialize(tensors)
    }

    /// Writes the weights to `path` (see [`MemMamba::weights_to_bytes`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.weights_to_bytes()?).map_err(|e| io_error(path, e))
    }

    /// A model for `cfg` on `device` with the weights in `bytes`. If the file records a
    /// configuration it must be `cfg` ([`ModelError::ConfigMismatch`] otherwise); every weight
    /// the model needs must be present with its shape.
    pub fn weights_from_bytes(cfg: &Config, bytes: &[u8], device: &Device) -> Result<Self> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)?;
        if let Some(json) = metadata.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) {
            let found = Config::from_json_str(json)?;
            if found.fingerprint() != cfg.fingerprint() {
                return Err(ModelError::ConfigMismatch {
                    what: "weights",
                    expected: cfg.fingerprint(),
                    found: found.fingerprint(),
                });
            }
        }
        Self::shared_weights_from_bytes(cfg, bytes, device)
    }

    /// A model for `cfg` that takes every weight it needs from the weights file at `path`, made
    /// for any configuration: the file's other tensors are ignored. It starts the notes-off
    /// baseline from a MemMamba's weights (same sizes), so that both have seen the same tokens.
    pub fn load_shared(cfg: &Config, path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        Self::shared_weights_from_bytes(cfg, &bytes, device)
    }

    fn shared_weights_from_bytes(cfg: &Config, bytes: &[u8], device: &Device) -> Result<Self> {
        let loaded = candle_core::safetensors::load_buffer(bytes, device)?;
        let varmap = VarMap::new();
        let model = Self::init(cfg, &varmap, device, 0)?;
        let data = lock_vars(&varmap)?;
        for (name, var) in data.iter() {
            let stored = loaded
                .get(name)
                .ok_or_else(|| invalid(format!("missing tensor `{name}`")))?;
            let tensor = match loaded.get(&format!("{name}{QUANT_SCALE_SUFFIX}")) {
                Some(scale) => dequantize_rows(name, stored, scale)?,
                None => stored.clone(),
            };
            if tensor.dims() != var.dims() {
                return Err(invalid(format!(
                    "tensor `{name}` has shape {:?}, the model needs {:?}",
                    tensor.dims(),
                    var.dims()
                )));
            }
            var.set(&tensor.to_dtype(var.dtype())?)?;
        }
        drop(data);
        Ok(model)
    }

    /// Loads a model for `cfg` from the weights file at `path` (see
    /// [`MemMamba::weights_from_bytes`]).
    pub fn load(cfg: &Config, path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        Self::weights_from_bytes(cfg, &bytes, device)
    }
}
