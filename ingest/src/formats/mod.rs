//! Parsers, one module per format. Each turns a file's bytes into a [`Document`]; PDF is
//! split in two steps ([`pdf::extract_pdf`], run isolated, then [`pdf::pdf_document`]).

pub(crate) mod builder;
pub mod epub;
pub mod html;
pub mod markdown;
pub mod pdf;

use crate::document::Document;
use crate::sniff::{Format, SniffError};
use crate::text::{parse_text, TextError};

/// Why a file could not be parsed: one variant per format, each with its specific reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Sniff(#[from] SniffError),
    #[error(transparent)]
    Pdf(#[from] pdf::PdfError),
    #[error(transparent)]
    Epub(#[from] epub::EpubError),
    #[error(transparent)]
    Html(#[from] html::HtmlError),
    #[error(transparent)]
    Markdown(#[from] markdown::MarkdownError),
    #[error(transparent)]
    Text(#[from] TextError),
    #[error("the {format} parser crashed on this file: {message}")]
    Panicked {
        format: &'static str,
        message: String,
    },
}

/// Parses bytes of a known format in this process; PDF is extracted in-process too (use a
/// [`crate::worker::PdfWorker`] instead where a crash must not take the caller down).
pub fn parse(format: Format, bytes: &[u8]) -> Result<Document, ParseError> {
    Ok(match format {
        Format::Pdf => pdf::pdf_document(pdf::extract_pdf(bytes)?)?,
        Format::Epub => epub::parse_epub(bytes)?,
        Format::Html => html::parse_html(bytes)?,
        Format::Markdown => markdown::parse_markdown(bytes)?,
        Format::Text => parse_text(bytes)?,
    })
}
