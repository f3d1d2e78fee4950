//! The error type of the model's public API.

use std::path::PathBuf;

use thiserror::Error;

use crate::config::ConfigError;

/// Everything that can go wrong running, saving or loading a model or a [`crate::MemoryState`].
#[derive(Debug, Error)]
pub enum ModelError {
    /// A tensor operation failed (shapes, dtypes, devices).
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A state or weights file was made with another configuration.
    #[error(
        "config mismatch: the model has config fingerprint {expected}, \
         the {what} was made with {found}"
    )]
    ConfigMismatch {
        /// What was being loaded or used ("memory state", "weights").
        what: &'static str,
        /// The fingerprint of the model's [`crate::Config`].
        expected: String,
        /// The fingerprint recorded in the state or file.
        found: String,
    },
    /// A saved state or weights file is malformed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read ("memory state", "weights").
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A safetensors container could not be parsed or written.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// A JSON header could not be parsed or written.
    #[error("JSON header: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result of the model's public API.
pub type Result<T> = std::result::Result<T, ModelError>;

/// A [`ModelError::Invalid`] about a memory state.
pub(crate) fn invalid_state(reason: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        what: "memory state",
        reason: reason.into(),
    }
}
