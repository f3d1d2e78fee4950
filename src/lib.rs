//! MemReader: the library behind the CLI and the desktop app.
//!
//! - [`library`]: the document library (ingestion, catalog, BM25 search), from `ingest`.
//! - [`model`]: the shipped MemMamba model and its tokenizer.
//! - [`memory`]: reading a document into the model's memory (resumable, with progress).
//! - [`ask`]: questions answered from BM25, memory pointers and model reranking, with citations.
//! - [`notes`]: what a memory holds, mapped back to the text.
//! - [`session`] and [`snapshot`]: Q&A history and memories, exported to one file and back.

pub mod ask;
pub mod book;
pub mod error;
pub mod library;
pub mod memory;
pub mod model;
pub mod notes;
pub mod session;
pub mod snapshot;
pub mod text;

pub use error::{Error, Result};

/// The version of MemReader, as built.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The bundled assets (tokenizer, model, demo books) in the source tree.
pub fn assets_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// Where the bundled demo books are in the source tree.
pub fn demo_books_dir() -> std::path::PathBuf {
    assets_dir().join("demo")
}
