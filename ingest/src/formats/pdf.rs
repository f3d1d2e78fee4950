//! PDF in: the text of each page (pdf-extract over lopdf), the Info dictionary's title and
//! author. pdf-extract can panic or loop on real files: call [`extract_pdf`] in a worker
//! process (see [`crate::worker`]), never in the process that must survive it.

use serde::{Deserialize, Serialize};

use crate::document::{Document, Section};

/// The text layer of a PDF as extracted, one string per page. This is what the worker process
/// sends back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfText {
    pub pages: Vec<String>,
    pub title: Option<String>,
    pub author: Option<String>,
}

/// Why a PDF could not be read. Serializable, so that it crosses the worker boundary intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PdfError {
    #[error(
        "the PDF is encrypted and needs a password to open; MemReader cannot read it \
         (save a copy without the password and ingest that)"
    )]
    Encrypted,
    #[error("the PDF has no text layer ({pages} page(s) of images only: a scan that needs OCR)")]
    NoTextLayer { pages: usize },
    #[error("the PDF has no pages")]
    NoPages,
    #[error("the PDF is truncated (it does not end with %%EOF): {0}")]
    Truncated(String),
    #[error("the PDF is damaged or malformed: {0}")]
    Malformed(String),
    #[error("the PDF parser crashed on this file: {0}")]
    Panicked(String),
    #[error(
        "the PDF parser did not finish within {} s (it may loop on this file); stopped it",
        *.millis as f64 / 1000.0
    )]
    Timeout { millis: u64 },
    #[error("the PDF parser ran out of memory (limit {mib} MiB); stopped it")]
    OutOfMemory { mib: u64 },
    #[error("the PDF worker process failed: {0}")]
    Worker(String),
}

/// Extracts the text of every page of a PDF, in this process. An encrypted PDF is opened if
/// its user password is empty (as viewers do) and refused otherwise. Pages whose content
/// cannot be interpreted give empty text; if every page fails, the first error is returned.
pub fn extract_pdf(bytes: &[u8]) -> Result<PdfText, PdfError> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| {
        if is_truncated(bytes) {
            PdfError::Truncated(e.to_string())
        } else {
            PdfError::Malformed(e.to_string())
        }
    })?;
    if doc.is_encrypted() {
        return Err(PdfError::Encrypted);
    }
    let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    if numbers.is_empty() {
        return Err(if is_truncated(bytes) {
            PdfError::Truncated("no page tree found".to_owned())
        } else {
            PdfError::NoPages
        });
    }
    let mut pages = Vec::with_capacity(numbers.len());
    let mut first_error = None;
    for number in numbers {
        let mut text = String::new();
        let result = {
            let mut output = pdf_extract::PlainTextOutput::new(&mut text);
            pdf_extract::output_doc_page(&doc, &mut output, number)
        };
        if let Err(e) = result {
            first_error.get_or_insert_with(|| format!("page {number}: {e}"));
            text.clear();
        }
        pages.push(text);
    }
    if let Some(error) = first_error.filter(|_| pages.iter().all(String::is_empty)) {
        return Err(PdfError::Malformed(error));
    }
    Ok(PdfText {
        pages,
        title: info_field(&doc, b"Title"),
        author: info_field(&doc, b"Author"),
    })
}

/// A PDF whose last kilobyte has no `%%EOF` was cut short.
fn is_truncated(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    !tail.windows(5).any(|w| w == b"%%EOF")
}

fn info_field(doc: &lopdf::Document, key: &[u8]) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let (_, info) = doc.dereference(info).ok()?;
    let value = info.as_dict().ok()?.get(key).ok()?;
    let (_, value) = doc.dereference(value).ok()?;
    let text = lopdf::decode_text_string(value).ok()?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// Builds a [`Document`] from extracted pages: each page's text (trailing spaces cut, runs of
/// blank lines folded to one) becomes a page section titled with its number, pages separated
/// by a blank line. A PDF with no text on any page has no text layer.
pub fn pdf_document(pdf: PdfText) -> Result<Document, PdfError> {
    if pdf.pages.iter().all(|p| p.trim().is_empty()) {
        return Err(PdfError::NoTextLayer {
            pages: pdf.pages.len(),
        });
    }
    let mut text = String::new();
    let mut pages = Vec::with_capacity(pdf.pages.len());
    for (index, page) in pdf.pages.iter().enumerate() {
        let cleaned = clean_page(page);
        if !text.is_empty() && !cleaned.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(&cleaned);
        pages.push(Section {
            title: Some((index + 1).to_string()),
            range: start..text.len(),
        });
    }
    Ok(Document {
        title: pdf.title,
        author: pdf.author,
        language: None,
        text,
        chapters: Vec::new(),
        pages,
    })
}

fn clean_page(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut blank_run = 0;
    for line in page.replace(['\r', '\u{c}'], "\n").lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}
