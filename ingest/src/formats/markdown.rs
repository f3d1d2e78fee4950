//! Markdown in: the rendered text (no markup), the first `#` heading as the title, chapters
//! from headings. Parsed by pulldown-cmark (CommonMark with tables and YAML front matter).

use pulldown_cmark::{Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd};

use crate::document::Document;
use crate::formats::builder::{chapters_from_headings, TextBuilder};
use crate::text::decode;

/// Why a Markdown file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkdownError {
    #[error("the Markdown file has no text")]
    NoText,
}

/// Parses Markdown bytes (UTF-8, else Windows-1252) into a [`Document`]. Paragraphs, headings,
/// list items, code blocks and table rows become lines or paragraphs of plain text; link
/// targets, images and raw HTML tags are dropped, their text kept. YAML front matter gives
/// `title:`, `author:` and `lang:`/`language:`.
pub fn parse_markdown(bytes: &[u8]) -> Result<Document, MarkdownError> {
    let source = decode(bytes);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut out = TextBuilder::default();
    let mut front_matter = String::new();
    let mut in_front_matter = false;
    let mut in_code = false;
    for event in Parser::new_ext(&source, options) {
        match event {
            Event::Start(Tag::MetadataBlock(MetadataBlockKind::YamlStyle)) => {
                in_front_matter = true
            }
            Event::End(TagEnd::MetadataBlock(_)) => in_front_matter = false,
            Event::Text(t) if in_front_matter => front_matter.push_str(&t),
            Event::Start(Tag::Heading { level, .. }) => out.start_heading(heading_level(level)),
            Event::End(TagEnd::Heading(_)) => out.end_heading(),
            Event::Start(Tag::CodeBlock(_)) => {
                in_code = true;
                out.paragraph_break();
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code = false;
                out.paragraph_break();
            }
            Event::Start(Tag::Item | Tag::TableRow | Tag::TableHead)
            | Event::End(TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead) => out.line_break(),
            Event::Start(Tag::TableCell) => out.space(),
            Event::Start(Tag::Paragraph | Tag::BlockQuote(_) | Tag::List(_) | Tag::Table(_))
            | Event::End(
                TagEnd::Paragraph | TagEnd::BlockQuote(_) | TagEnd::List(_) | TagEnd::Table,
            ) => out.paragraph_break(),
            Event::Text(t) => out.text(&t, in_code),
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => out.text(&t, false),
            Event::SoftBreak => out.space(),
            Event::HardBreak => out.line_break(),
            _ => {}
        }
    }
    let (text, headings) = out.finish();
    if text.trim().is_empty() {
        return Err(MarkdownError::NoText);
    }
    let field = |names: &[&str]| {
        front_matter.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let value = value.trim().trim_matches(['"', '\'']).trim();
            (names.contains(&key.trim()) && !value.is_empty()).then(|| value.to_owned())
        })
    };
    let title = field(&["title"]).or_else(|| {
        headings
            .iter()
            .find(|h| h.level == 1)
            .map(|h| text[h.range.clone()].to_owned())
    });
    let chapters = chapters_from_headings(&text, &headings);
    Ok(Document {
        title,
        author: field(&["author"]),
        language: field(&["lang", "language"]),
        ..Document::from_byte_sections(text, chapters, Vec::new())
    })
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}
