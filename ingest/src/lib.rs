//! Documents in: format sniffing and parsing, passages with locators, the catalog, the tantivy
//! index and bulk ingestion. Knows nothing of models.

pub mod document;
pub mod passage;
pub mod text;

pub use document::{Document, Section};
pub use passage::{split_passages, Passage, MAX_WORDS, MIN_WORDS};
pub use text::{parse_text, TextError};
