//! The parsed form of a document: its metadata, its text and its structure.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A parsed document. Every range in `chapters` and `pages` is a byte range into `text` that
/// starts and ends on char boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
    pub text: String,
    pub chapters: Vec<Section>,
    pub pages: Vec<Section>,
}

/// A titled part of a document's text (a chapter or a page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub title: Option<String>,
    pub range: Range<usize>,
}
