//! The error type of the `memreader` library's reading, asking and snapshot API.

use std::path::PathBuf;

use memmamba::ModelError;

use crate::library::LibraryError;
use crate::snapshot::SnapshotError;

/// What can go wrong reading documents into memory, asking, or moving memories around. Every
/// variant about a file names it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model directory lacks a file it needs.
    #[error(
        "the model is missing: {} does not exist (the trained model is config.json + \
         model.safetensors in assets/model; pass --model DIR or set MEMREADER_MODEL to use \
         another)",
        path.display()
    )]
    ModelMissing { path: PathBuf },
    /// A file exists but cannot be used (a bad config, tokenizer, or stored memory).
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A command needs a document's memory and it has none.
    #[error(
        "{title} ({id}) has not been read into memory yet: run `memreader read {short}`",
        short = &id[..id.len().min(12)]
    )]
    NotRead { id: String, title: String },
    /// A stored memory was made by another model than the one loaded.
    #[error(
        "{}: this memory was made with other model weights (blake3 {found}, the model has \
         {expected}); read the document again with `memreader read --restart`",
        path.display()
    )]
    OtherWeights {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The document is in the catalog but not ready (failed, or being indexed).
    #[error("{title} ({id}) is not ready to read: its status is {status}")]
    NotReady {
        id: String,
        title: String,
        status: &'static str,
    },
    #[error("invalid session name {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    SessionName(String),
    #[error("stopped by the user")]
    Cancelled,
}

/// Result of the `memreader` library.
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Io`] for `path`.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`, so a reader sees the old file or the new one, never half of one. The
/// temporary file is locked until the rename: one that can be locked was left by a process that
/// died ([`crate::snapshot`] removes those next to an export).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.lock()?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Error {
        Error::Model(ModelError::Candle(e))
    }
}
