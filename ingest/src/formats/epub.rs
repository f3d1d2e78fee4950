//! EPUB 2 and 3 in: the spine's XHTML documents in reading order, chapter titles from the
//! EPUB 3 navigation document or the EPUB 2 NCX, metadata from the package document (OPF).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use scraper::{Html, Selector};
use zip::ZipArchive;

use crate::document::{Document, Section};
use crate::formats::html::{check_nesting, html_text, nesting_depth, HtmlError, Markup};
use crate::text::decode;

/// The most bytes inflated from one entry of an EPUB (a guard against zip bombs): a chapter's
/// XHTML is rarely more than a few MiB, even when a whole book is one file.
const MAX_ENTRY_BYTES: u64 = 32 << 20;

/// The most bytes inflated from all the entries of one EPUB together (a spine may list one
/// large entry many times).
const MAX_TOTAL_BYTES: u64 = 256 << 20;

/// The deepest element nesting read in the EPUB's XML (container, package document, NCX).
const MAX_XML_NESTING: usize = 1024;

/// Why an EPUB could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpubError {
    #[error("the EPUB is not a readable zip archive (damaged or truncated?): {0}")]
    Zip(String),
    #[error("the EPUB has an entry with an unsafe path {0:?} (it points outside the archive); refusing to read it")]
    UnsafePath(String),
    #[error("the EPUB has no {0} (required by the EPUB specification)")]
    MissingEntry(String),
    #[error("the EPUB's {path} is not well-formed XML: {message}")]
    Xml { path: String, message: String },
    #[error("the EPUB's package document {0} names no root file, manifest or spine")]
    NoSpine(String),
    #[error("the EPUB's spine lists {href} (item {idref:?}), which is missing from the archive")]
    MissingSpineItem { idref: String, href: String },
    #[error("the EPUB's spine refers to item {0:?}, which is not in its manifest")]
    UnknownSpineItem(String),
    #[error("the EPUB's entry {path} is larger than {} MiB (a zip bomb?)", MAX_ENTRY_BYTES >> 20)]
    TooLarge { path: String },
    #[error("the EPUB's documents inflate to more than {} MiB in all (a zip bomb?)", MAX_TOTAL_BYTES >> 20)]
    TooLargeInTotal,
    #[error("the EPUB's {path}: {source}")]
    Html { path: String, source: HtmlError },
    #[error("the EPUB has no text in its spine's documents")]
    NoText,
}

/// Parses EPUB (2 or 3) bytes into a [`Document`]. Each spine document with an entry in the
/// table of contents starts a chapter with that entry's title; spine documents without one
/// continue the chapter before them. The text of each spine document is extracted as for
/// HTML, and consecutive documents are separated by a blank line.
pub fn parse_epub(bytes: &[u8]) -> Result<Document, EpubError> {
    let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| EpubError::Zip(e.to_string()))?;
    let mut archive = Archive {
        zip,
        left: MAX_TOTAL_BYTES,
    };
    for i in 0..archive.zip.len() {
        let entry = archive
            .zip
            .by_index_raw(i)
            .map_err(|e| EpubError::Zip(e.to_string()))?;
        // `..` past the top, or an absolute path (which the OCF container never has).
        let absolute = entry.name_raw().starts_with(b"/") || entry.name_raw().starts_with(b"\\");
        if absolute || entry.enclosed_name().is_none() {
            return Err(EpubError::UnsafePath(
                String::from_utf8_lossy(entry.name_raw()).into_owned(),
            ));
        }
    }
    let container_path = "META-INF/container.xml";
    let container = archive
        .read(container_path)?
        .ok_or_else(|| EpubError::MissingEntry(container_path.to_owned()))?;
    let opf_path = with_xml(container_path, &container, |doc| {
        doc.descendants()
            .find(|n| n.has_tag_name_local("rootfile"))
            .and_then(|n| n.attribute("full-path"))
            .map(str::to_owned)
    })?
    .ok_or_else(|| EpubError::NoSpine(container_path.to_owned()))?;
    let opf = archive
        .read(&opf_path)?
        .ok_or_else(|| EpubError::MissingEntry(format!("package document {opf_path}")))?;
    let package = with_xml(&opf_path, &opf, Package::from_xml)?;
    if package.spine.is_empty() {
        return Err(EpubError::NoSpine(opf_path));
    }
    let opf_dir = parent(&opf_path);

    let mut toc: HashMap<String, String> = HashMap::new();
    if let Some(nav_href) = &package.nav {
        let nav_path = resolve(opf_dir, nav_href);
        if let Some(nav) = archive.read(&nav_path)? {
            let nav = decode(&nav);
            check_nesting(&nav).map_err(|source| EpubError::Html {
                path: nav_path.clone(),
                source,
            })?;
            toc = nav_titles(&nav, parent(&nav_path));
        }
    }
    if toc.is_empty() {
        if let Some(ncx_href) = &package.ncx {
            let ncx_path = resolve(opf_dir, ncx_href);
            if let Some(ncx) = archive.read(&ncx_path)? {
                toc = with_xml(&ncx_path, &ncx, |doc| ncx_titles(doc, parent(&ncx_path)))?;
            }
        }
    }

    let mut text = String::new();
    let mut chapters: Vec<Section> = Vec::new();
    for idref in &package.spine {
        let item = package
            .manifest
            .get(idref)
            .ok_or_else(|| EpubError::UnknownSpineItem(idref.clone()))?;
        if !item.media_type.contains("html") {
            continue;
        }
        let path = resolve(opf_dir, &item.href);
        let content = archive
            .read(&path)?
            .ok_or_else(|| EpubError::MissingSpineItem {
                idref: idref.clone(),
                href: path.clone(),
            })?;
        let page = html_text(&decode(&content)).map_err(|source| EpubError::Html {
            path: path.clone(),
            source,
        })?;
        if page.text.trim().is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let start = text.len();
        text.push_str(&page.text);
        match toc.get(&path) {
            Some(title) => chapters.push(Section {
                title: Some(title.clone()),
                range: start..text.len(),
            }),
            None => {
                if let Some(last) = chapters.last_mut() {
                    last.range.end = text.len();
                }
            }
        }
    }
    if text.trim().is_empty() {
        return Err(EpubError::NoText);
    }
    Ok(Document {
        title: package.title,
        author: package.author,
        language: package.language,
        ..Document::from_byte_sections(text, chapters, Vec::new())
    })
}

/// What the package document (OPF) says.
#[derive(Debug, Default)]
struct Package {
    title: Option<String>,
    author: Option<String>,
    language: Option<String>,
    manifest: HashMap<String, Item>,
    spine: Vec<String>,
    /// The EPUB 3 navigation document's href.
    nav: Option<String>,
    /// The EPUB 2 NCX's href.
    ncx: Option<String>,
}

#[derive(Debug)]
struct Item {
    href: String,
    media_type: String,
}

impl Package {
    fn from_xml(doc: &roxmltree::Document) -> Package {
        let mut package = Package::default();
        let text_of = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name_local(name))
                .and_then(|n| n.text())
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|t| !t.is_empty())
        };
        package.title = text_of("title");
        package.author = text_of("creator");
        package.language = text_of("language");
        let mut ncx_id = None;
        for node in doc.descendants() {
            if node.has_tag_name_local("item") {
                let (Some(id), Some(href)) = (node.attribute("id"), node.attribute("href")) else {
                    continue;
                };
                let media_type = node.attribute("media-type").unwrap_or("").to_owned();
                let properties = node.attribute("properties").unwrap_or("");
                if properties.split_whitespace().any(|p| p == "nav") {
                    package.nav = Some(href.to_owned());
                }
                if media_type == "application/x-dtbncx+xml" && package.ncx.is_none() {
                    package.ncx = Some(href.to_owned());
                }
                package.manifest.insert(
                    id.to_owned(),
                    Item {
                        href: href.to_owned(),
                        media_type,
                    },
                );
            } else if node.has_tag_name_local("spine") {
                ncx_id = node.attribute("toc").map(str::to_owned);
            } else if node.has_tag_name_local("itemref") {
                if let Some(idref) = node.attribute("idref") {
                    package.spine.push(idref.to_owned());
                }
            }
        }
        if let Some(item) = ncx_id.and_then(|id| package.manifest.get(&id)) {
            package.ncx = Some(item.href.clone());
        }
        package
    }
}

trait LocalName {
    fn has_tag_name_local(&self, name: &str) -> bool;
}

impl LocalName for roxmltree::Node<'_, '_> {
    fn has_tag_name_local(&self, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name
    }
}

/// Titles by spine path from an EPUB 3 navigation document's `toc` nav (or its first nav).
fn nav_titles(source: &str, base: &str) -> HashMap<String, String> {
    let html = Html::parse_document(source);
    let (Ok(navs), Ok(links)) = (Selector::parse("nav"), Selector::parse("a[href]")) else {
        return HashMap::new();
    };
    let mut all = html.select(&navs);
    let toc = html
        .select(&navs)
        .find(|nav| {
            nav.value()
                .attrs()
                .any(|(k, v)| k.ends_with("type") && v == "toc")
        })
        .or_else(|| all.next());
    let mut titles = HashMap::new();
    for link in toc.iter().flat_map(|nav| nav.select(&links)) {
        let title = link.text().collect::<Vec<_>>().join(" ");
        let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(href) = link.value().attr("href") {
            if !title.is_empty() {
                titles.entry(resolve(base, href)).or_insert(title);
            }
        }
    }
    titles
}

/// Titles by spine path from an EPUB 2 NCX's navigation points.
fn ncx_titles(doc: &roxmltree::Document, base: &str) -> HashMap<String, String> {
    let mut titles = HashMap::new();
    for point in doc
        .descendants()
        .filter(|n| n.has_tag_name_local("navPoint"))
    {
        let label = point
            .children()
            .find(|n| n.has_tag_name_local("navLabel"))
            .and_then(|l| l.descendants().find(|n| n.has_tag_name_local("text")))
            .and_then(|t| t.text())
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
        let src = point
            .children()
            .find(|n| n.has_tag_name_local("content"))
            .and_then(|c| c.attribute("src"));
        if let (Some(label), Some(src)) = (label, src) {
            if !label.is_empty() {
                titles.entry(resolve(base, src)).or_insert(label);
            }
        }
    }
    titles
}

/// The EPUB's zip archive and how many more bytes may be inflated from it.
struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    left: u64,
}

impl Archive<'_> {
    /// Reads one entry by name; `None` if there is no such entry. An entry that declares or
    /// inflates to more than [`MAX_ENTRY_BYTES`] is [`EpubError::TooLarge`], and reading past
    /// [`MAX_TOTAL_BYTES`] in all is [`EpubError::TooLargeInTotal`]: at most that much is
    /// ever inflated, whatever the archive declares.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, EpubError> {
        let entry = match self.zip.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(EpubError::Zip(format!("{name}: {e}"))),
        };
        let too_large = || EpubError::TooLarge {
            path: name.to_owned(),
        };
        if entry.size() > MAX_ENTRY_BYTES {
            return Err(too_large());
        }
        let limit = MAX_ENTRY_BYTES.min(self.left);
        let mut bytes = Vec::new();
        entry
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| EpubError::Zip(format!("{name}: {e}")))?;
        let read = bytes.len() as u64;
        if read > MAX_ENTRY_BYTES {
            return Err(too_large());
        }
        if read > self.left {
            return Err(EpubError::TooLargeInTotal);
        }
        self.left -= read;
        Ok(Some(bytes))
    }
}

/// Parses `bytes` as XML and runs `f` on it; a parse error names `path`.
fn with_xml<T>(
    path: &str,
    bytes: &[u8],
    f: impl FnOnce(&roxmltree::Document) -> T,
) -> Result<T, EpubError> {
    let source = decode(bytes);
    // roxmltree recurses over nested elements: 100 000 deep overflows the stack.
    if nesting_depth(source.as_bytes(), Markup::Xml) > MAX_XML_NESTING {
        return Err(EpubError::Xml {
            path: path.to_owned(),
            message: format!("elements nested more than {MAX_XML_NESTING} deep"),
        });
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc =
        roxmltree::Document::parse_with_options(&source, options).map_err(|e| EpubError::Xml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    Ok(f(&doc))
}

/// The folder part of an archive path (`OEBPS/content.opf` -> `OEBPS`).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Resolves an href from a document in `base` to an archive path: the fragment is dropped,
/// percent-escapes decoded, `.` and `..` segments folded.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    let href = percent_decode(href);
    let mut segments: Vec<&str> = if href.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|s| !s.is_empty()).collect()
    };
    for segment in href.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.join("/")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
