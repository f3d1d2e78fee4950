//! The parsed form of a document: its metadata, its text and its structure, located by char
//! offsets into the text; [`CharIndex`] turns those into byte offsets for slicing.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A parsed document. Every range in `chapters` and `pages` is a range of char offsets into
/// `text` (the n-th Unicode scalar value, not the n-th byte): slice with [`slice_chars`] or a
/// [`CharIndex`].
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
    /// Char range in the document's text.
    pub range: Range<usize>,
}

impl Document {
    /// A document without metadata whose sections were located by byte offsets into `text`
    /// (what the parsers find as they build the text); stores them as char ranges.
    pub(crate) fn from_byte_sections(
        text: String,
        chapters: Vec<Section>,
        pages: Vec<Section>,
    ) -> Document {
        let index = CharIndex::new(&text);
        let in_chars = |sections: Vec<Section>| -> Vec<Section> {
            sections
                .into_iter()
                .map(|s| Section {
                    range: index.chars(s.range),
                    title: s.title,
                })
                .collect()
        };
        let (chapters, pages) = (in_chars(chapters), in_chars(pages));
        Document {
            title: None,
            author: None,
            language: None,
            text,
            chapters,
            pages,
        }
    }
}

/// Chars between two checkpoints of a [`CharIndex`].
const STEP: usize = 64;

/// Converts between char offsets and byte offsets of one text: O(log n) for a byte offset,
/// O(1) plus a scan of at most 64 chars for a char offset, O(1) for ASCII text. Offsets past
/// the end are clamped to it.
#[derive(Debug, Clone)]
pub struct CharIndex<'a> {
    text: &'a str,
    /// The byte offset of every 64th char (char 0, 64, 128, ...); empty for ASCII text.
    checkpoints: Vec<usize>,
}

impl<'a> CharIndex<'a> {
    pub fn new(text: &'a str) -> CharIndex<'a> {
        let checkpoints = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices()
                .step_by(STEP)
                .map(|(at, _)| at)
                .collect()
        };
        CharIndex { text, checkpoints }
    }

    /// The byte offset where char `offset` starts (the text's length at or past its end).
    pub fn byte(&self, offset: usize) -> usize {
        if self.checkpoints.is_empty() {
            return offset.min(self.text.len());
        }
        let Some(&base) = self.checkpoints.get(offset / STEP) else {
            return self.text.len();
        };
        self.text[base..]
            .char_indices()
            .nth(offset % STEP)
            .map_or(self.text.len(), |(at, _)| base + at)
    }

    /// The char offset of byte `offset`: the number of chars that start before it.
    pub fn char(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if self.checkpoints.is_empty() {
            return offset;
        }
        let i = self
            .checkpoints
            .partition_point(|&at| at <= offset)
            .saturating_sub(1);
        let base = self.checkpoints[i];
        let starts = self.text.as_bytes()[base..offset]
            .iter()
            .filter(|&&b| !is_continuation(b))
            .count();
        i * STEP + starts
    }

    /// The byte range of a char range.
    pub fn bytes(&self, range: Range<usize>) -> Range<usize> {
        self.byte(range.start)..self.byte(range.end)
    }

    /// The char range of a byte range.
    pub fn chars(&self, range: Range<usize>) -> Range<usize> {
        self.char(range.start)..self.char(range.end)
    }

    /// The text of a char range.
    pub fn slice(&self, range: Range<usize>) -> &'a str {
        &self.text[self.bytes(range)]
    }
}

/// A UTF-8 continuation byte (`10xxxxxx`): it does not start a char.
fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// The byte range of `text` that the char range `range` covers (clamped to the text), for
/// slicing: `&text[char_range_to_bytes(text, range)]`. Scans the text; for many ranges into
/// one text, build a [`CharIndex`] once.
pub fn char_range_to_bytes(text: &str, range: Range<usize>) -> Range<usize> {
    CharIndex::new(text).bytes(range)
}

/// The text of a char range of `text` (clamped to the text).
pub fn slice_chars(text: &str, range: Range<usize>) -> &str {
    &text[char_range_to_bytes(text, range)]
}
