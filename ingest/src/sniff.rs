//! Format detection by content: the bytes decide, the file name only breaks the tie between
//! plain text and Markdown.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::text::looks_binary;

/// A document format that MemReader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pdf,
    Epub,
    Html,
    Markdown,
    Text,
}

impl Format {
    /// The lower-case name used in the catalog and the CLI: `pdf`, `epub`, `html`, `markdown`,
    /// `text`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Epub => "epub",
            Format::Html => "html",
            Format::Markdown => "markdown",
            Format::Text => "text",
        }
    }

    /// The inverse of [`Format::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        [
            Format::Pdf,
            Format::Epub,
            Format::Html,
            Format::Markdown,
            Format::Text,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// Why a file's content is not one of the formats MemReader reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("the file is {what}{}, not a document MemReader can read", named_as(.extension))]
    Unsupported {
        what: &'static str,
        extension: Option<String>,
    },
}

fn named_as(extension: &Option<String>) -> String {
    match extension {
        Some(ext) => format!(" although its name ends in .{ext}"),
        None => String::new(),
    }
}

/// Signatures of common non-document files, to say what a file really is.
const SIGNATURES: [(&[u8], &str); 12] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "a Windows executable"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file"),
    (b"\x00\x00\x01\x00", "an icon"),
];

/// Decides the format of a file from its bytes; `path` is used for messages and, among
/// textual files, to read `.md`/`.markdown` files as Markdown.
///
/// - `%PDF-` in the first 1024 bytes: PDF.
/// - A zip archive whose first entry is `mimetype` with `application/epub+zip`, or that has a
///   `META-INF/container.xml`: EPUB. Other zip files (DOCX, ...) are unsupported.
/// - Text that starts (after a BOM and whitespace) with `<!DOCTYPE html`, `<html`, `<?xml`
///   followed by an `<html` element, or has `<body`/`<p>` markup near its start: HTML.
/// - Other text: Markdown if the file name says so (and the bytes are not binary) or the text
///   has Markdown headings and links or emphasis, else plain text.
pub fn sniff(bytes: &[u8], path: &Path) -> Result<Format, SniffError> {
    let extension = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    if bytes.is_empty() {
        return Err(SniffError::Empty);
    }
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Ok(Format::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return if is_epub_zip(bytes) {
            Ok(Format::Epub)
        } else {
            Err(SniffError::Unsupported {
                what: "a zip archive (not an EPUB)",
                extension,
            })
        };
    }
    if let Some((_, what)) = SIGNATURES.iter().find(|(sig, _)| bytes.starts_with(sig)) {
        return Err(SniffError::Unsupported { what, extension });
    }
    let text_head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_lowercase();
    let text_head = text_head.trim_start_matches('\u{feff}').trim_start();
    if looks_like_html(text_head) {
        return Ok(Format::Html);
    }
    // Binary bytes named as Markdown go to the plain-text parser, which says what they are.
    let markdown_name =
        matches!(extension.as_deref(), Some("md" | "markdown" | "mdown")) && !looks_binary(bytes);
    if markdown_name || looks_like_markdown(&String::from_utf8_lossy(head)) {
        return Ok(Format::Markdown);
    }
    Ok(Format::Text)
}

fn looks_like_html(head: &str) -> bool {
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || (head.starts_with("<?xml") && head.contains("<html"))
        || (head.starts_with('<') && (head.contains("<body") || head.contains("<p>")))
}

/// At least one ATX heading (`# Title`) and one link, emphasis or fenced block.
fn looks_like_markdown(head: &str) -> bool {
    let heading = head.lines().any(|l| {
        let hashes = l.len() - l.trim_start_matches('#').len();
        (1..=6).contains(&hashes) && l[hashes..].starts_with(' ')
    });
    let inline = head.contains("](") || head.contains("**") || head.contains("\n```");
    heading && inline
}

/// True for a zip whose entries show it is an EPUB: the `mimetype` entry stored first as the
/// specification requires, or, for sloppier writers, a `META-INF/container.xml` entry.
fn is_epub_zip(bytes: &[u8]) -> bool {
    // A local file header: name length at 26, extra length at 28, name at 30.
    if bytes.len() > 30 {
        let name_len = usize::from(u16::from_le_bytes([bytes[26], bytes[27]]));
        let extra_len = usize::from(u16::from_le_bytes([bytes[28], bytes[29]]));
        let name = bytes.get(30..30 + name_len);
        let data = bytes.get(30 + name_len + extra_len..);
        if name == Some(b"mimetype".as_slice())
            && data.is_some_and(|d| d.starts_with(b"application/epub+zip"))
        {
            return true;
        }
    }
    let needle = b"META-INF/container.xml";
    bytes.windows(needle.len()).any(|w| w == needle)
}
