//! Building a document's text from markup: words, line and paragraph breaks and headings, with
//! whitespace collapsed as a browser would, and chapters from the headings.

use std::ops::Range;

use crate::document::Section;
use crate::text::sections;

/// Accumulates text from a markup walk (HTML, Markdown).
#[derive(Debug, Default)]
pub(crate) struct TextBuilder {
    text: String,
    /// Pending break: 0 none, 1 a space, 2 a line break, 3 a paragraph break.
    pending: u8,
    headings: Vec<Heading>,
    open_heading: Option<(u8, usize)>,
}

/// A heading found in the text: its level (1 for `h1`/`#`) and its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heading {
    pub level: u8,
    pub range: Range<usize>,
}

impl TextBuilder {
    /// Adds inline text; runs of whitespace become one space (unless `preformatted`).
    pub fn text(&mut self, s: &str, preformatted: bool) {
        if preformatted {
            for (i, line) in s.split('\n').enumerate() {
                if i > 0 {
                    self.line_break();
                }
                if !line.trim().is_empty() {
                    self.flush();
                    self.text.push_str(line.trim_end());
                }
            }
            return;
        }
        if s.starts_with(char::is_whitespace) {
            self.space();
        }
        let mut words = s.split_whitespace().peekable();
        while let Some(word) = words.next() {
            self.flush();
            self.text.push_str(word);
            if words.peek().is_some() {
                self.space();
            }
        }
        if s.ends_with(char::is_whitespace) && !s.trim().is_empty() {
            self.space();
        }
    }

    pub fn space(&mut self) {
        self.pending = self.pending.max(1);
    }

    pub fn line_break(&mut self) {
        self.pending = self.pending.max(2);
    }

    pub fn paragraph_break(&mut self) {
        self.pending = self.pending.max(3);
    }

    /// Starts a heading of `level`: it begins a new paragraph.
    pub fn start_heading(&mut self, level: u8) {
        self.paragraph_break();
        self.open_heading = Some((level, usize::MAX));
    }

    pub fn end_heading(&mut self) {
        if let Some((level, start)) = self.open_heading.take() {
            if start != usize::MAX && start < self.text.len() {
                self.headings.push(Heading {
                    level,
                    range: start..self.text.len(),
                });
            }
        }
        self.paragraph_break();
    }

    /// Writes the pending break before new text; a break at the very start is dropped.
    fn flush(&mut self) {
        if !self.text.is_empty() {
            match self.pending {
                1 => self.text.push(' '),
                2 => self.text.push('\n'),
                3 => self.text.push_str("\n\n"),
                _ => {}
            }
        }
        self.pending = 0;
        if let Some((_, start)) = &mut self.open_heading {
            if *start == usize::MAX {
                *start = self.text.len();
            }
        }
    }

    pub fn finish(self) -> (String, Vec<Heading>) {
        (self.text, self.headings)
    }
}

/// Chapters from headings: the highest heading level (1 to 3) that occurs at least twice
/// starts a chapter at each of its headings; each runs to the next one or the end of the text.
/// The ranges are byte ranges, as the headings' are.
pub(crate) fn chapters_from_headings(text: &str, headings: &[Heading]) -> Vec<Section> {
    let Some(level) = (1..=3).find(|l| headings.iter().filter(|h| h.level == *l).count() >= 2)
    else {
        return Vec::new();
    };
    let starts = headings
        .iter()
        .filter(|h| h.level == level)
        .map(|h| (h.range.start, text[h.range.clone()].to_owned()))
        .collect();
    sections(text, starts)
}
