//! Passages: sentence-aware windows of a document's text, the unit of retrieval and citation.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::document::{CharIndex, Document, Section};

/// A passage has at least this many words, unless it is the last one of its chapter (or of
/// the text before the first chapter) and could not be joined to the one before it.
pub const MIN_WORDS: usize = 150;
/// A passage never has more words than this.
pub const MAX_WORDS: usize = 300;

/// A window of a document's text, located by chapter, page and char range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    /// `"{doc_id}:{start}"` (the char offset where it starts): stable as long as the
    /// document's text is.
    pub id: String,
    pub doc_id: String,
    /// Index into the document's chapters.
    pub chapter: Option<usize>,
    /// Index into the document's pages.
    pub page: Option<usize>,
    /// Char range into the document's text (see [`crate::CharIndex`]).
    pub range: Range<usize>,
}

/// Splits a document into passages of [`MIN_WORDS`] to [`MAX_WORDS`] words made of whole
/// sentences; a sentence longer than [`MAX_WORDS`] is cut at word boundaries. Passages never
/// cross a chapter boundary or a page start, and between two consecutive passages there is only whitespace
/// (or a chapter heading's start, which belongs to the next chapter's first passage).
pub fn split_passages(doc: &Document, doc_id: &str) -> Vec<Passage> {
    // The splitting works on byte offsets; sections come in and passages go out in chars.
    let index = CharIndex::new(&doc.text);
    let in_bytes = |sections: &[Section]| -> Vec<Range<usize>> {
        sections
            .iter()
            .map(|s| index.bytes(s.range.clone()))
            .collect()
    };
    let (chapters, pages) = (in_bytes(&doc.chapters), in_bytes(&doc.pages));
    // Passages break at chapter boundaries and at page starts, so that each has one chapter
    // (or none) and one page (or none).
    let mut cuts = vec![0, doc.text.len()];
    for chapter in &chapters {
        cuts.extend([chapter.start, chapter.end]);
    }
    cuts.extend(pages.iter().map(|page| page.start));
    cuts.sort_unstable();
    cuts.dedup();
    let segments = cuts.windows(2).map(|w| {
        let chapter = chapters.iter().position(|c| c.contains(&w[0]));
        (chapter, w[0]..w[1])
    });
    segments
        .flat_map(|(chapter, range)| {
            group(sentences(&doc.text, range))
                .into_iter()
                .map(move |range| (chapter, range))
        })
        .map(|(chapter, range)| {
            let page = pages.iter().position(|page| page.contains(&range.start));
            let range = index.chars(range);
            Passage {
                id: format!("{doc_id}:{}", range.start),
                doc_id: doc_id.to_owned(),
                chapter,
                page,
                range,
            }
        })
        .collect()
}

/// A sentence (or a piece of an overlong one) and its word count.
struct Sentence {
    range: Range<usize>,
    words: usize,
}

/// Greedily packs sentences into passages: a passage is closed once it reaches
/// [`MIN_WORDS`], or before a sentence that would take it over [`MAX_WORDS`]. A short last
/// passage is joined to the one before when that stays within [`MAX_WORDS`].
fn group(sentences: Vec<Sentence>) -> Vec<Range<usize>> {
    let mut passages: Vec<(Range<usize>, usize)> = Vec::new();
    let mut current: Option<(Range<usize>, usize)> = None;
    for sentence in sentences {
        if let Some((_, words)) = &current {
            if words + sentence.words > MAX_WORDS {
                passages.extend(current.take());
            }
        }
        let (range, words) = current.get_or_insert((sentence.range.clone(), 0));
        range.end = sentence.range.end;
        *words += sentence.words;
        if *words >= MIN_WORDS {
            passages.extend(current.take());
        }
    }
    if let Some((range, words)) = current {
        match passages.last_mut() {
            Some((last, last_words)) if *last_words + words <= MAX_WORDS => {
                last.end = range.end;
                *last_words += words;
            }
            _ => passages.push((range, words)),
        }
    }
    passages.into_iter().map(|(range, _)| range).collect()
}

/// Words that end with a period without ending a sentence.
const ABBREVIATIONS: [&str; 22] = [
    "Mr", "Mrs", "Ms", "Messrs", "Mme", "Mlle", "Dr", "St", "Jr", "Sr", "Prof", "Rev", "Hon",
    "Gen", "Col", "Capt", "Lt", "Sgt", "Mt", "vs", "viz", "cf",
];

const CLOSERS: [char; 7] = ['"', '\'', '”', '’', ')', ']', '»'];

/// Splits `text[range]` into sentences, each trimmed of surrounding whitespace. A sentence
/// ends after `.`, `!` or `?` (and any closing quotes or brackets) followed by whitespace,
/// unless the period ends a known abbreviation or an initial, or the next word starts in
/// lower case. A blank line always ends a sentence, so headings stand alone. Sentences over
/// [`MAX_WORDS`] words are cut into pieces at word boundaries.
fn sentences(text: &str, range: Range<usize>) -> Vec<Sentence> {
    let segment = &text[range.clone()];
    let mut ends = Vec::new();
    let chars: Vec<(usize, char)> = segment.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '\n' {
            let next = chars[i + 1..]
                .iter()
                .find(|(_, c)| !matches!(c, ' ' | '\t'));
            if matches!(next, Some((_, '\n'))) {
                ends.push(at);
            }
        } else if matches!(c, '.' | '!' | '?') {
            let mut j = i + 1;
            while j < chars.len()
                && (matches!(chars[j].1, '.' | '!' | '?') || CLOSERS.contains(&chars[j].1))
            {
                j += 1;
            }
            let end = chars.get(j).map_or(segment.len(), |&(at, _)| at);
            let followed_by_space = chars.get(j).is_none_or(|(_, c)| c.is_whitespace());
            let next_word = chars[j..]
                .iter()
                .map(|(_, c)| *c)
                .find(|c| !c.is_whitespace());
            let continues = next_word.is_some_and(char::is_lowercase);
            if followed_by_space
                && !continues
                && !(c == '.' && j == i + 1 && is_abbreviation(&segment[..at]))
            {
                ends.push(end);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    ends.push(segment.len());

    let mut result = Vec::new();
    let mut start = 0;
    for end in ends {
        let piece = &segment[start..end];
        let trimmed_start = start + (piece.len() - piece.trim_start().len());
        let trimmed_end = start + piece.trim_end().len();
        start = end;
        if trimmed_start < trimmed_end {
            let base = range.start;
            result.extend(cut(text, base + trimmed_start..base + trimmed_end));
        }
    }
    result
}

/// True when the word just before a period is an abbreviation or a single capital initial.
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '"' | '“' | '‘' | '(' | '['))
        .next()
        .unwrap_or("");
    let mut chars = word.chars();
    let initial = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
    initial || ABBREVIATIONS.contains(&word)
}

/// The sentence at `range`, cut into pieces of at most [`MAX_WORDS`] words.
fn cut(text: &str, range: Range<usize>) -> Vec<Sentence> {
    let mut words: Vec<Range<usize>> = Vec::new();
    let mut word_start = None;
    for (at, c) in text[range.clone()].char_indices() {
        let at = range.start + at;
        match (c.is_whitespace(), word_start) {
            (true, Some(start)) => {
                words.push(start..at);
                word_start = None;
            }
            (false, None) => word_start = Some(at),
            _ => {}
        }
    }
    if let Some(start) = word_start {
        words.push(start..range.end);
    }
    words
        .chunks(MAX_WORDS)
        .map(|chunk| Sentence {
            range: chunk[0].start..chunk[chunk.len() - 1].end,
            words: chunk.len(),
        })
        .collect()
}
