//! Weights files: safetensors with the VarBuilder names of [`MemMamba`] and the model's
//! [`Config`] as JSON in the metadata under [`CONFIG_KEY`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use safetensors::SafeTensors;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::model::MemMamba;

/// Metadata key of the configuration JSON in a weights file.
pub const CONFIG_KEY: &str = "memmamba.config";

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

impl MemMamba {
    /// The weights as safetensors bytes, with the configuration in the metadata.
    pub fn weights_to_bytes(&self) -> Result<Vec<u8>> {
        let tensors: Vec<(String, Tensor)> = {
            let data = self
                .varmap()
                .data()
                .lock()
                .map_err(|_| invalid("the variable map's lock is poisoned"))?;
            data.iter()
                .map(|(name, var)| Ok((name.clone(), var.as_tensor().contiguous()?)))
                .collect::<Result<_>>()?
        };
        let metadata = HashMap::from([(CONFIG_KEY.to_string(), self.config().to_json_string())]);
        Ok(safetensors::serialize(tensors, Some(metadata))?)
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
        let loaded = candle_core::safetensors::load_buffer(bytes, device)?;
        let varmap = VarMap::new();
        let model = Self::init(cfg, &varmap, device)?;
        let data = varmap
            .data()
            .lock()
            .map_err(|_| invalid("the variable map's lock is poisoned"))?;
        for (name, var) in data.iter() {
            let tensor = loaded
                .get(name)
                .ok_or_else(|| invalid(format!("missing tensor `{name}`")))?;
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
