//! HTML and XHTML in: visible text with block structure, metadata from `<title>`, `<meta>` and
//! `lang`, chapters from headings. Parsed by html5ever (through `scraper`), which accepts any
//! markup a browser would.

use ego_tree::iter::Edge;
use scraper::{Html, Node, Selector};

use crate::document::Document;
use crate::formats::builder::{chapters_from_headings, Heading, TextBuilder};
use crate::text::decode;

/// Why an HTML file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtmlError {
    #[error("the HTML page has no visible text")]
    NoText,
    #[error(
        "the HTML nests elements more than {MAX_NESTING} deep (the parser slows down \
         quadratically with depth); refusing it"
    )]
    TooDeep,
}

/// The deepest element nesting read. html5ever scans its stack of open elements for most
/// start tags, so time grows with the square of the depth (100 000 nested `<div>`s take
/// minutes); real pages and books nest a few dozen deep.
pub const MAX_NESTING: usize = 4096;

/// The visible text of an HTML document and what it says about itself.
#[derive(Debug, Default)]
pub(crate) struct HtmlText {
    pub text: String,
    pub headings: Vec<Heading>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
}

/// Parses HTML bytes (UTF-8, else Windows-1252) into a [`Document`]: the text of `<body>`
/// with paragraphs, list items, table rows and headings on lines of their own; `<script>`,
/// `<style>` and other invisible elements dropped. The title is `<title>` (else the first
/// `<h1>`), the author `<meta name="author">`, the language `<html lang>`.
pub fn parse_html(bytes: &[u8]) -> Result<Document, HtmlError> {
    let page = html_text(&decode(bytes))?;
    if page.text.trim().is_empty() {
        return Err(HtmlError::NoText);
    }
    let title = page.title.clone().or_else(|| {
        page.headings
            .iter()
            .find(|h| h.level == 1)
            .map(|h| page.text[h.range.clone()].to_owned())
    });
    let chapters = chapters_from_headings(&page.text, &page.headings);
    Ok(Document {
        title,
        author: page.author,
        language: page.language,
        ..Document::from_byte_sections(page.text, chapters, Vec::new())
    })
}

/// Elements whose content is never shown.
const HIDDEN: [&str; 9] = [
    "head", "script", "style", "template", "noscript", "svg", "math", "iframe", "object",
];

/// Elements that stand on lines of their own.
const BLOCKS: [&str; 30] = [
    "p",
    "div",
    "section",
    "article",
    "aside",
    "header",
    "footer",
    "nav",
    "main",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "figure",
    "figcaption",
    "hr",
    "address",
    "body",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
];

/// Extracts the visible text, headings and metadata of an HTML (or XHTML) string; markup
/// nested deeper than [`MAX_NESTING`] is refused before it is parsed.
pub(crate) fn html_text(source: &str) -> Result<HtmlText, HtmlError> {
    check_nesting(source)?;
    let html = Html::parse_document(source);
    let mut out = TextBuilder::default();
    let mut hidden_depth = 0usize;
    let mut pre_depth = 0usize;
    for edge in html.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(e) => {
                    let name = e.name();
                    if hidden_depth > 0 || HIDDEN.contains(&name) {
                        hidden_depth += 1;
                        continue;
                    }
                    if name == "pre" {
                        pre_depth += 1;
                    }
                    if let Some(level) = heading_level(name) {
                        out.start_heading(level);
                    } else if name == "br" {
                        out.line_break();
                    } else if matches!(name, "td" | "th") {
                        out.space();
                    } else if BLOCKS.contains(&name) {
                        out.paragraph_break_or_line(name);
                    }
                }
                Node::Text(t) if hidden_depth == 0 => out.text(t, pre_depth > 0),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(e) = node.value() {
                    let name = e.name();
                    if hidden_depth > 0 {
                        hidden_depth -= 1;
                        continue;
                    }
                    if name == "pre" {
                        pre_depth = pre_depth.saturating_sub(1);
                    }
                    if heading_level(name).is_some() {
                        out.end_heading();
                    } else if BLOCKS.contains(&name) {
                        out.paragraph_break_or_line(name);
                    }
                }
            }
        }
    }
    let (text, headings) = out.finish();
    Ok(HtmlText {
        text,
        headings,
        title: select_text(&html, "title"),
        author: select_attr(&html, "meta[name=author]", "content")
            .or_else(|| select_attr(&html, "meta[name='dc.creator' i]", "content")),
        language: select_attr(&html, "html", "lang")
            .or_else(|| select_attr(&html, "html", "xml:lang")),
    })
}

/// Elements that never hold others: they add nothing to the nesting.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements the parser closes when a sibling starts (`<p>`, `<li>`, table parts, ...): a run
/// of them left unclosed does not nest.
const SIBLINGS: [&str; 20] = [
    "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "rb", "rt", "rp", "rtc",
    "thead", "tbody", "tfoot", "colgroup", "caption", "head", "body",
];

/// Elements whose content is text, not markup, up to their end tag.
const RAW_TEXT: [&str; 6] = ["script", "style", "textarea", "title", "xmp", "noembed"];

/// Refuses markup nested deeper than [`MAX_NESTING`] (see [`nesting_depth`]).
pub(crate) fn check_nesting(source: &str) -> Result<(), HtmlError> {
    if nesting_depth(source.as_bytes(), Markup::Html) > MAX_NESTING {
        return Err(HtmlError::TooDeep);
    }
    Ok(())
}

/// How tags nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Markup {
    /// Every start tag not closed by `/>` nests.
    Xml,
    /// As XML, except void elements and those closed by their next sibling.
    Html,
}

/// An estimate of the depth of a parser's stack of open elements, from a scan of the tags:
/// start tags of elements that can hold others count one deeper, their end tags one
/// shallower; in HTML, void elements, elements closed by their next sibling (`<p>`, `<li>`,
/// ...) and raw text (scripts, styles) do not count. Comments and declarations are skipped.
pub(crate) fn nesting_depth(source: &[u8], markup: Markup) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    let find = |from: usize, needle: &[u8]| {
        source[from.min(source.len())..]
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle))
            .map(|i| from + i)
    };
    while let Some(open) = memchr(b'<', &source[at..]).map(|i| at + i) {
        let rest = &source[open + 1..];
        if rest.starts_with(b"!--") {
            at = find(open + 4, b"-->").map_or(source.len(), |end| end + 3);
            continue;
        }
        let end = memchr(b'>', rest).map_or(source.len(), |i| open + 1 + i);
        at = (end + 1).min(source.len());
        let closing = rest.first() == Some(&b'/');
        let name_start = usize::from(closing);
        let name_len = rest[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'_'))
            .count();
        if name_len == 0 || !rest[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name =
            String::from_utf8_lossy(&rest[name_start..name_start + name_len]).to_ascii_lowercase();
        let nests = markup == Markup::Xml
            || (!VOID.contains(&name.as_str()) && !SIBLINGS.contains(&name.as_str()));
        if closing {
            if nests {
                depth = depth.saturating_sub(1);
            }
        } else if markup == Markup::Html && RAW_TEXT.contains(&name.as_str()) {
            let close = format!("</{name}");
            at = find(at, close.as_bytes()).unwrap_or(source.len());
        } else if nests && source.get(end.wrapping_sub(1)) != Some(&b'/') {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

impl TextBuilder {
    /// List items and table rows are lines; other blocks are paragraphs.
    fn paragraph_break_or_line(&mut self, name: &str) {
        if matches!(name, "li" | "tr" | "dt" | "dd") {
            self.line_break();
        } else {
            self.paragraph_break();
        }
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn select_text(html: &Html, selector: &str) -> Option<String> {
    let selector = Selector::parse(selector).ok()?;
    let element = html.select(&selector).next()?;
    let text = element.text().collect::<Vec<_>>().join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

fn select_attr(html: &Html, selector: &str, attr: &str) -> Option<String> {
    let selector = Selector::parse(selector).ok()?;
    let value = html.select(&selector).next()?.value().attr(attr)?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}
