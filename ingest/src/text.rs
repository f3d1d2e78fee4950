//! Plain text in: decoding, Project Gutenberg boilerplate, metadata and chapter headings.

use std::borrow::Cow;
use std::ops::Range;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::document::{Document, Section};

/// Why a byte buffer could not be read as a plain text document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the file contains no text (it is empty or only whitespace)")]
    Empty,
    #[error(
        "the file does not look like plain text: it contains NUL bytes or mostly control \
         characters (is it a binary file or a UTF-16 text?)"
    )]
    Binary,
}

/// Parses plain text bytes into a [`Document`].
///
/// Text with NUL bytes or many control characters (a binary file, or UTF-16) is refused.
/// Other bytes are decoded as UTF-8 (a byte order mark is stripped) if they are valid UTF-8,
/// else as Windows-1252 (or the encoding an XML or `<meta charset>` declaration at the top
/// names); line endings become `\n`. Project Gutenberg headers and footers are removed, and
/// the header's `Title:`, `Author:` and `Language:` lines become the metadata. Chapters
/// start at heading lines such as `CHAPTER I`, `Chapter 12.`, `BOOK II` or `PART ONE` that
/// stand on a line of their own after a blank line; each runs to the next heading or the end.
/// A heading directly followed by another (`VOLUME I`, then `CHAPTER I`) starts one chapter
/// titled `VOLUME I / CHAPTER I`. A book with no such headings (collections of stories or
/// essays) is divided at its upper-case titles instead: see [`title_headings`].
pub fn parse_text(bytes: &[u8]) -> Result<Document, TextError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if looks_binary(bytes) {
        return Err(TextError::Binary);
    }
    let normalised = decode(bytes);
    let (header, body) = split_gutenberg(&normalised);
    let text = body.trim().to_owned();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    let chapters = detect_chapters(&text);
    Ok(Document {
        title: header.and_then(|h| header_field(h, "Title")),
        author: header.and_then(|h| header_field(h, "Author")),
        language: header.and_then(|h| header_field(h, "Language")),
        ..Document::from_byte_sections(text, chapters, Vec::new())
    })
}

/// Decodes text bytes: by their byte order mark if they have one (UTF-8, UTF-16LE or
/// UTF-16BE); else as UTF-8 if they are valid UTF-8; else in the encoding that the document
/// declares in its first KiB, if it does (`<?xml ... encoding="..."?>`, `<meta charset=...>`
/// or `<meta http-equiv=Content-Type content="...; charset=...">`, any label browsers know:
/// Shift_JIS, GBK, KOI8-R, ISO-8859-2, ...); else as Windows-1252. Line endings become `\n`.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let decoded = match Encoding::for_bom(bytes) {
        Some((encoding, bom)) => encoding.decode_without_bom_handling(&bytes[bom..]).0,
        None => match std::str::from_utf8(bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                declared_encoding(bytes)
                    .unwrap_or(WINDOWS_1252)
                    .decode_without_bom_handling(bytes)
                    .0
            }
        },
    };
    decoded.replace("\r\n", "\n").replace('\r', "\n")
}

/// The encoding that markup declares in its first KiB, other than UTF-8 (which the bytes are
/// not, when this is asked) and UTF-16 (which an ASCII-readable declaration cannot be).
fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let value_after = |text: &str, key: &str| -> Option<String> {
        let rest = &text[text.find(key)? + key.len()..];
        let rest = rest.trim_start_matches(['"', '\'', ' ']);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    };
    let label = if head.trim_start().starts_with("<?xml") {
        let declaration = &head[..head.find("?>").unwrap_or(head.len())];
        value_after(declaration, "encoding=")
    } else {
        None
    }
    .or_else(|| value_after(&head[head.find("<meta")?..], "charset="))?;
    Encoding::for_label(label.as_bytes())
        .map(Encoding::output_encoding)
        .filter(|encoding| *encoding != UTF_8)
}

/// True for buffers with a NUL byte or where more than a tenth of the bytes are control
/// characters other than tab, line feed, form feed and carriage return.
pub(crate) fn looks_binary(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return true;
    }
    let controls = bytes
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f)
        .count();
    controls * 10 > bytes.len()
}

/// Lines of `text` with their byte ranges, without the `\n`.
fn lines(text: &str) -> impl Iterator<Item = (Range<usize>, &str)> {
    let mut start = 0;
    text.split('\n').map(move |line| {
        let range = start..start + line.len();
        start = range.end + 1;
        (range, line)
    })
}

fn is_gutenberg_marker(line: &str, which: &str) -> bool {
    let upper = line.trim().to_uppercase();
    upper.starts_with("***")
        && (upper.contains(&format!("{which} OF THE PROJECT GUTENBERG"))
            || upper.contains(&format!("{which} OF THIS PROJECT GUTENBERG")))
}

/// Splits off a Project Gutenberg header and footer: returns the header (if a start marker
/// was found) and the body between the markers (the whole text when there are none).
fn split_gutenberg(text: &str) -> (Option<&str>, &str) {
    let mut header = None;
    let mut body_start = 0;
    let mut body_end = text.len();
    for (range, line) in lines(text) {
        if header.is_none() && is_gutenberg_marker(line, "START") {
            header = Some(&text[..range.start]);
            body_start = (range.end + 1).min(text.len());
        } else if range.start >= body_start && is_gutenberg_marker(line, "END") {
            body_end = range.start;
            break;
        }
    }
    (header, &text[body_start..body_end])
}

fn header_field(header: &str, name: &str) -> Option<String> {
    header.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim() == name && !value.is_empty()).then(|| value.to_owned())
    })
}

fn detect_chapters(text: &str) -> Vec<Section> {
    let mut starts = keyword_headings(text);
    if starts.is_empty() {
        starts = title_headings(text);
    }
    sections(text, starts)
}

/// Chapter starts at keyword headings (`CHAPTER IV. The Ball`, see [`is_heading`]).
fn keyword_headings(text: &str) -> Vec<(usize, String)> {
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut previous_blank = true;
    for (range, line) in lines(text) {
        let trimmed = line.trim();
        if previous_blank && is_heading(trimmed) {
            let offset = line.len() - line.trim_start().len();
            match starts.last_mut() {
                // A heading with nothing under it but another heading ("VOLUME I" then
                // "CHAPTER I") is merged into that one.
                Some((start, title)) if text[*start..range.start].trim() == title.as_str() => {
                    title.push_str(" / ");
                    title.push_str(trimmed);
                }
                _ => starts.push((range.start + offset, trimmed.to_owned())),
            }
        }
        previous_blank = trimmed.is_empty();
    }
    starts
}

/// Chapter starts at upper-case titles, as story and essay collections set them: one to three
/// lines of capitals, not indented (indented ones are tables of contents), not ending in a
/// page number, after two blank lines (or at the start) and before a blank line, the lines
/// joined as the title (`THE CRITIC AS ARTIST WITH SOME REMARKS ...`). Fewer than two such
/// titles is no division at all.
fn title_headings(text: &str) -> Vec<(usize, String)> {
    let all: Vec<(Range<usize>, &str)> = lines(text).collect();
    let blank = |i: usize| all.get(i).is_none_or(|(_, line)| line.trim().is_empty());
    let is_title_line = |line: &str| {
        line.len() <= 80
            && !line.starts_with(char::is_whitespace)
            && line.chars().any(char::is_alphabetic)
            && !line.chars().any(char::is_lowercase)
            && !line.trim_end().ends_with(|c: char| c.is_ascii_digit())
    };
    let mut starts = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let after_gap = i == 0 || (i >= 2 && blank(i - 1) && blank(i - 2));
        let run = (i..all.len().min(i + 4))
            .take_while(|&j| is_title_line(all[j].1))
            .count();
        if after_gap && (1..=3).contains(&run) && blank(i + run) {
            let title: Vec<&str> = all[i..i + run]
                .iter()
                .map(|(_, line)| line.trim())
                .collect();
            starts.push((all[i].0.start, title.join(" ")));
            i += run;
        } else {
            i += 1;
        }
    }
    if starts.len() < 2 {
        starts.clear();
    }
    starts
}

/// Sections titled at byte offsets `starts` (in order): each runs to the next one, or to the
/// end of the text, less trailing whitespace (byte ranges).
pub(crate) fn sections(text: &str, starts: Vec<(usize, String)>) -> Vec<Section> {
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|(start, _)| *start)
        .chain([text.len()])
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(|((start, title), end)| Section {
            title: Some(title),
            range: start..text[..end].trim_end().len(),
        })
        .collect()
}

const HEADING_WORDS: [&str; 4] = ["CHAPTER", "BOOK", "PART", "VOLUME"];

const NUMBER_WORDS: [&str; 20] = [
    "ONE",
    "TWO",
    "THREE",
    "FOUR",
    "FIVE",
    "SIX",
    "SEVEN",
    "EIGHT",
    "NINE",
    "TEN",
    "ELEVEN",
    "TWELVE",
    "THIRTEEN",
    "FOURTEEN",
    "FIFTEEN",
    "SIXTEEN",
    "SEVENTEEN",
    "EIGHTEEN",
    "NINETEEN",
    "TWENTY",
];

/// A heading is a keyword (`CHAPTER`, `Chapter`, `BOOK`, `PART`, `VOLUME`, ...), a number
/// (digits, a Roman numeral or an English number word), and optionally, after `.`, `:` or a
/// dash, a short title: `CHAPTER IV. The Ball`.
fn is_heading(line: &str) -> bool {
    if line.len() > 100 {
        return false;
    }
    let mut words = line.splitn(3, char::is_whitespace);
    let (Some(keyword), Some(number)) = (words.next(), words.next()) else {
        return false;
    };
    let keyword_ok = HEADING_WORDS.iter().any(|k| {
        keyword == *k || (keyword.eq_ignore_ascii_case(k) && keyword[1..] == k[1..].to_lowercase())
    });
    let bare = number.trim_end_matches(['.', ':']);
    let punctuated = bare.len() < number.len();
    let number_ok = !bare.is_empty()
        && (bare.bytes().all(|b| b.is_ascii_digit())
            || is_roman(bare)
            || NUMBER_WORDS.iter().any(|w| bare.eq_ignore_ascii_case(w)));
    let rest_ok = match words.next().map(str::trim) {
        None | Some("") => true,
        Some(rest) => punctuated || rest.starts_with(['-', '—', '–', ':']),
    };
    keyword_ok && number_ok && rest_ok
}

fn is_roman(s: &str) -> bool {
    let upper = s.bytes().all(|b| b"IVXLCDM".contains(&b));
    let lower = s.bytes().all(|b| b"ivxlcdm".contains(&b));
    upper || lower
}
