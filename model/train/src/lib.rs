//! Training MemMamba: the tokenizer, the data (corpus books and synthetic long-range tasks in
//! the app's question format), the optimiser and schedule, and checkpoints that resume exactly.

pub mod corpus;
pub mod eval;
pub mod fidelity;
pub mod loss;
pub mod optim;
pub mod plots;
pub mod report;
pub mod tasks;
pub mod tokenizer;
pub mod tokens;
pub mod trainer;

use std::path::{Path, PathBuf};

/// Everything that can go wrong while preparing data or training; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("training configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] memmamba::ModelError),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        TrainError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
