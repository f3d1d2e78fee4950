//! Documents in: format sniffing and parsing, passages with locators, the catalog, the tantivy
//! index and bulk ingestion. Knows nothing of models.
//!
//! The entry point for applications is [`Library`]: a directory holding a catalog (SQLite),
//! a search index (tantivy) and the parsed documents, with [`Library::ingest`] for bulk
//! ingestion and [`Library::search`] for cited passages.

pub mod bulk;
pub mod catalog;
pub mod document;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod formats;
pub mod index;
pub mod library;
pub mod passage;
pub mod sniff;
pub mod text;
pub mod worker;

pub use bulk::{Failure, IngestOptions, IngestReport, Ingested, PdfIsolation, Progress, Skipped};
pub use catalog::{CatalogError, DocumentRecord, Status};
pub use document::{char_range_to_bytes, slice_chars, CharIndex, Document, Section};
pub use formats::pdf::{PdfError, PdfText};
pub use formats::{parse, ParseError};
pub use index::{Hit, IndexError, Snippet};
pub use library::{Library, LibraryError, SearchOptions};
pub use passage::{split_passages, Passage, MAX_WORDS, MIN_WORDS};
pub use sniff::{sniff, Format, SniffError};
pub use text::{parse_text, TextError};
pub use worker::{worker_main, PdfWorker};
