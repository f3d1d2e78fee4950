//! PDF in: the text of each page (pdf-extract over lopdf), chapters from the outline
//! (bookmarks), the Info dictionary's title and author. pdf-extract can panic or loop on real
//! files: call [`extract_pdf`] in a worker process (see [`crate::worker`]), never in the
//! process that must survive it.

use std::collections::{HashMap, HashSet};

use lopdf::{Dictionary, Object, ObjectId};
use serde::{Deserialize, Serialize};

use crate::document::{Document, Section};
use crate::text::sections;

/// The text layer of a PDF as extracted, one string per page. This is what the worker process
/// sends back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfText {
    pub pages: Vec<String>,
    pub title: Option<String>,
    pub author: Option<String>,
    /// The outline's entries that point at a page of this document, in outline order.
    #[serde(default)]
    pub outline: Vec<Bookmark>,
}

/// An entry of a PDF's outline (its bookmarks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    pub title: String,
    /// Nesting depth: 1 for the outline's top-level entries.
    pub level: usize,
    /// The page it points at, counted from 0.
    pub page: usize,
}

/// The most outline entries read (a guard against huge or cyclic outlines).
const MAX_BOOKMARKS: usize = 10_000;

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
    check_xref_widths(bytes)?;
    let mut doc = lopdf::Document::load_mem(bytes).map_err(|e| {
        if is_truncated(bytes) {
            PdfError::Truncated(e.to_string())
        } else {
            PdfError::Malformed(e.to_string())
        }
    })?;
    // lopdf decrypts what opens with the empty password as it loads.
    if doc.is_encrypted() {
        doc = load_v4_without_key_length(bytes, doc).ok_or(PdfError::Encrypted)?;
    }
    let page_ids = doc.get_pages();
    let numbers: Vec<u32> = page_ids.keys().copied().collect();
    if numbers.is_empty() {
        return Err(if is_truncated(bytes) {
            PdfError::Truncated("no page tree found".to_owned())
        } else {
            PdfError::NoPages
        });
    }
    let mut pages = Vec::with_capacity(numbers.len());
    let mut first_error = None;
    // One extractor for the whole document: it builds each font once (vendor/pdf-extract).
    let mut extractor = pdf_extract::PageExtractor::new(&doc);
    for number in numbers {
        if page_ids
            .get(&number)
            .is_some_and(|&id| parent_chain_loops(&doc, id))
        {
            first_error.get_or_insert_with(|| format!("page {number}: its /Parent chain loops"));
            pages.push(String::new());
            continue;
        }
        let mut text = String::new();
        let result = {
            let mut output = pdf_extract::PlainTextOutput::new(&mut text);
            extractor.output_page(number, &mut output)
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
    let page_index: HashMap<ObjectId, usize> = page_ids
        .values()
        .enumerate()
        .map(|(index, id)| (*id, index))
        .collect();
    Ok(PdfText {
        pages,
        title: info_field(&doc, b"Title"),
        author: info_field(&doc, b"Author"),
        outline: outline(&doc, &page_index),
    })
}

/// The outline's entries, depth first, that lead to a page of `page_index`: by a `/Dest` or a
/// `/GoTo` action, each an explicit destination (`[page /XYZ ...]`) or a named one (the
/// catalog's `/Dests` or the `/Names` tree). Cycles and entries past [`MAX_BOOKMARKS`] are
/// ignored; an outline that cannot be read is no outline.
fn outline(doc: &lopdf::Document, page_index: &HashMap<ObjectId, usize>) -> Vec<Bookmark> {
    let Some(first) = doc
        .catalog()
        .ok()
        .and_then(|catalog| dict_at(doc, catalog, b"Outlines"))
        .and_then(|outlines| outlines.get(b"First").ok())
    else {
        return Vec::new();
    };
    let mut bookmarks = Vec::new();
    let mut seen = HashSet::new();
    // (entry, level): the next entries to visit, the top of the stack first.
    let mut stack = vec![(first, 1)];
    while let Some((entry, level)) = stack.pop() {
        let Ok(id) = entry.as_reference() else {
            continue;
        };
        if !seen.insert(id) || seen.len() > MAX_BOOKMARKS {
            continue;
        }
        let Ok(node) = doc.get_dictionary(id) else {
            continue;
        };
        let title = node
            .get(b"Title")
            .ok()
            .and_then(|t| doc.dereference(t).ok())
            .and_then(|(_, t)| lopdf::decode_text_string(t).ok())
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty());
        let page = destination(doc, node).and_then(|target| page_index.get(&target));
        if let (Some(title), Some(&page)) = (title, page) {
            bookmarks.push(Bookmark { title, level, page });
        }
        if let Ok(next) = node.get(b"Next") {
            stack.push((next, level));
        }
        if let Ok(child) = node.get(b"First") {
            stack.push((child, level + 1));
        }
    }
    bookmarks
}

/// The page object an outline entry leads to.
fn destination(doc: &lopdf::Document, entry: &Dictionary) -> Option<ObjectId> {
    let target = match entry.get(b"Dest") {
        Ok(dest) => dest,
        Err(_) => {
            let action = dict_at(doc, entry, b"A")?;
            (action.get(b"S").ok()?.as_name().ok()? == b"GoTo").then_some(())?;
            action.get(b"D").ok()?
        }
    };
    let (_, target) = doc.dereference(target).ok()?;
    let explicit = match target {
        Object::Name(name) | Object::String(name, _) => named_destination(doc, name)?,
        other => other,
    };
    let explicit = match explicit {
        // A named destination may be a dictionary whose /D is the array.
        Object::Dictionary(d) => doc.dereference(d.get(b"D").ok()?).ok()?.1,
        other => other,
    };
    explicit.as_array().ok()?.first()?.as_reference().ok()
}

/// A named destination's value, from the catalog's `/Dests` dictionary (PDF 1.1) or the
/// `/Dests` name tree under `/Names`.
fn named_destination<'a>(doc: &'a lopdf::Document, name: &[u8]) -> Option<&'a Object> {
    let catalog = doc.catalog().ok()?;
    if let Some(found) = dict_at(doc, catalog, b"Dests").and_then(|dests| dests.get(name).ok()) {
        return doc.dereference(found).ok().map(|(_, value)| value);
    }
    let tree = dict_at(doc, catalog, b"Names").and_then(|names| dict_at(doc, names, b"Dests"))?;
    find_in_name_tree(doc, tree, name, 0)
}

/// Looks `name` up in a name tree (leaves' `/Names` pairs, `/Kids` below), at most 32 deep.
fn find_in_name_tree<'a>(
    doc: &'a lopdf::Document,
    node: &'a Dictionary,
    name: &[u8],
    depth: usize,
) -> Option<&'a Object> {
    if let Some(Object::Array(pairs)) = node
        .get(b"Names")
        .ok()
        .and_then(|n| doc.dereference(n).ok())
        .map(|(_, n)| n)
    {
        for pair in pairs.chunks(2) {
            if let [key, value] = pair {
                if key.as_str().ok() == Some(name) {
                    return doc.dereference(value).ok().map(|(_, value)| value);
                }
            }
        }
    }
    if depth >= 32 {
        return None;
    }
    let kids = node
        .get(b"Kids")
        .ok()
        .and_then(|k| doc.dereference(k).ok())?;
    kids.1.as_array().ok()?.iter().find_map(|kid| {
        let kid = doc.dereference(kid).ok()?.1.as_dict().ok()?;
        find_in_name_tree(doc, kid, name, depth + 1)
    })
}

/// The dictionary at `key` of `dict`, following a reference.
fn dict_at<'a>(
    doc: &'a lopdf::Document,
    dict: &'a Dictionary,
    key: &[u8],
) -> Option<&'a Dictionary> {
    let (_, value) = doc.dereference(dict.get(key).ok()?).ok()?;
    value.as_dict().ok()
}

/// True when following `/Parent` from a page comes back to where it was: pdf-extract walks
/// that chain for inherited attributes and loops forever on it (a fuzzing finding).
fn parent_chain_loops(doc: &lopdf::Document, page: ObjectId) -> bool {
    let mut seen = HashSet::new();
    let mut current = page;
    while seen.insert(current) {
        let parent = doc
            .get_dictionary(current)
            .and_then(|node| node.get(b"Parent"))
            .and_then(Object::as_reference);
        match parent {
            Ok(parent) => current = parent,
            Err(_) => return false,
        }
    }
    true
}

/// Opens, with the empty password, a document encrypted with security handler V 4 whose
/// encryption dictionary has no `/Length`, which lopdf loaded as encrypted: V 4 keys are 128
/// bits (ISO 32000-1, table 20; lopdf itself refuses any other `/Length` with V 4), but lopdf
/// takes a missing `/Length` as 40 bits, so it could not open such a file that pypdf and
/// viewers open (pypdf's `r4-aes-v2-no-key-length.pdf`). lopdf loads no object of a document
/// it cannot decrypt, so the dictionary with `/Length 128` is appended to `bytes` as an
/// incremental update (the PDF way to change an object, every offset staying right) and the
/// result loaded again. None when the document is not such a one or still does not open.
fn load_v4_without_key_length(bytes: &[u8], doc: lopdf::Document) -> Option<lopdf::Document> {
    let id = doc
        .trailer
        .get(b"Encrypt")
        .and_then(Object::as_reference)
        .ok()?;
    let mut encryption = doc.get_dictionary(id).ok()?.clone();
    if encryption.get(b"V").and_then(Object::as_i64).ok() != Some(4) || encryption.has(b"Length") {
        return None;
    }
    encryption.set("Length", 128);
    let mut update = lopdf::IncrementalDocument::create_from(bytes.to_vec(), doc);
    update.new_document.set_object(id, encryption);
    let mut patched = Vec::new();
    update.save_to(&mut patched).ok()?;
    lopdf::Document::load_mem(&patched)
        .ok()
        .filter(|doc| !doc.is_encrypted())
}

/// The most bytes a field of a cross-reference stream may take (`/W [1 4 2]`): 8 holds any
/// offset.
const MAX_XREF_FIELD_BYTES: u64 = 8;

/// Refuses a cross-reference stream whose `/W` field widths are over
/// [`MAX_XREF_FIELD_BYTES`]: lopdf allocates a buffer of each width before it can fail, and an
/// allocation of 66 666 666 666 666 664 bytes aborts the process (a fuzzing finding).
fn check_xref_widths(bytes: &[u8]) -> Result<(), PdfError> {
    let find = |from: usize, needle: &[u8]| {
        bytes
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| from + i)
    };
    let mut at = 0;
    while let Some(xref) = find(at, b"/XRef") {
        at = xref + 5;
        // The stream's dictionary: from the `<<` before the type to the `stream` after it.
        let start = bytes[..xref]
            .windows(2)
            .rposition(|w| w == b"<<")
            .unwrap_or(0);
        let end = find(xref, b"stream").unwrap_or(bytes.len());
        let dict = &bytes[start..end];
        let Some(w) = dict.windows(2).position(|w| w == b"/W") else {
            continue;
        };
        let rest = &dict[w + 2..];
        let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
        let Some(array) = rest.strip_prefix(b"[") else {
            continue;
        };
        let array = &array[..array.iter().position(|&b| b == b']').unwrap_or(array.len())];
        let too_wide = array
            .split(|b| b.is_ascii_whitespace())
            .filter(|n| !n.is_empty())
            .any(|n| {
                std::str::from_utf8(n)
                    .ok()
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_none_or(|n| n > MAX_XREF_FIELD_BYTES)
            });
        if too_wide {
            return Err(PdfError::Malformed(format!(
                "its cross-reference stream has field widths /W [{}], over {MAX_XREF_FIELD_BYTES} \
                 bytes",
                String::from_utf8_lossy(array).trim()
            )));
        }
    }
    Ok(())
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
/// by a blank line. Chapters come from the outline (see [`outline_chapters`]). A PDF with no
/// text on any page has no text layer.
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
    let chapters = outline_chapters(&text, &pages, &pdf.outline);
    Ok(Document {
        title: pdf.title,
        author: pdf.author,
        ..Document::from_byte_sections(text, chapters, pages)
    })
}

/// Chapters from the outline: the shallowest level with at least two entries starts a chapter
/// at the start of each entry's page (entries on one page make one chapter, their titles
/// joined by ` / `); each runs to the next one or the end of the text, and the text before
/// the first is in none. Byte ranges, as the pages' are.
fn outline_chapters(text: &str, pages: &[Section], outline: &[Bookmark]) -> Vec<Section> {
    let Some(level) = outline
        .iter()
        .map(|b| b.level)
        .filter(|&l| outline.iter().filter(|b| b.level == l).count() >= 2)
        .min()
    else {
        return Vec::new();
    };
    let mut entries: Vec<&Bookmark> = outline.iter().filter(|b| b.level == level).collect();
    entries.sort_by_key(|b| b.page);
    let mut starts: Vec<(usize, String)> = Vec::new();
    for entry in entries {
        let Some(page) = pages.get(entry.page) else {
            continue;
        };
        match starts.last_mut() {
            Some((start, title)) if *start == page.range.start => {
                title.push_str(" / ");
                title.push_str(&entry.title);
            }
            _ => starts.push((page.range.start, entry.title.clone())),
        }
    }
    sections(text, starts)
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
