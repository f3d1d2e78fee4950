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
}

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
    let page = html_text(&decode(bytes));
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

/// Extracts the visible text, headings and metadata of an HTML (or XHTML) string.
pub(crate) fn html_text(source: &str) -> HtmlText {
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
    HtmlText {
        text,
        headings,
        title: select_text(&html, "title"),
        author: select_attr(&html, "meta[name=author]", "content")
            .or_else(|| select_attr(&html, "meta[name='dc.creator' i]", "content")),
        language: select_attr(&html, "html", "lang")
            .or_else(|| select_attr(&html, "html", "xml:lang")),
    }
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
