//! Char offsets into a document's text. Every range MemReader shows or stores (passages,
//! citations, note positions mapped back to the text) counts chars, not bytes, so that the app's
//! UI (JavaScript strings aside) and other tools can point into the text without knowing its
//! encoding. A `&str` must never be sliced with char offsets directly: [`CharMap`] converts
//! between the two in O(1) for ASCII text and O(64) otherwise.

use std::ops::Range;

/// Chars between two checkpoints of a [`CharMap`].
const STRIDE: usize = 64;

/// Converts between char offsets and byte offsets of one text.
#[derive(Debug, Clone)]
pub struct CharMap {
    /// None for ASCII text (char offset == byte offset); else the byte offset of every
    /// `STRIDE`-th char.
    checkpoints: Option<Vec<usize>>,
    chars: usize,
    bytes: usize,
}

impl CharMap {
    /// The map of `text`.
    pub fn new(text: &str) -> CharMap {
        if text.is_ascii() {
            return CharMap {
                checkpoints: None,
                chars: text.len(),
                bytes: text.len(),
            };
        }
        let mut checkpoints = Vec::with_capacity(text.len() / STRIDE + 1);
        let mut chars = 0;
        for (i, (byte, _)) in text.char_indices().enumerate() {
            if i % STRIDE == 0 {
                checkpoints.push(byte);
            }
            chars = i + 1;
        }
        CharMap {
            checkpoints: Some(checkpoints),
            chars,
            bytes: text.len(),
        }
    }

    /// The number of chars of the text.
    pub fn len_chars(&self) -> usize {
        self.chars
    }

    /// The byte offset of char `c` of `text` (the text this map was made from); offsets past
    /// the end give the text's length.
    pub fn byte_of_char(&self, text: &str, c: usize) -> usize {
        if c >= self.chars {
            return self.bytes;
        }
        let Some(checkpoints) = &self.checkpoints else {
            return c;
        };
        let start = checkpoints[c / STRIDE];
        text[start..]
            .char_indices()
            .nth(c % STRIDE)
            .map_or(self.bytes, |(b, _)| start + b)
    }

    /// The char offset of the char that contains byte `b` (byte offsets inside a char round
    /// down to its start); offsets past the end give the number of chars.
    pub fn char_of_byte(&self, text: &str, b: usize) -> usize {
        if b >= self.bytes {
            return self.chars;
        }
        let Some(checkpoints) = &self.checkpoints else {
            return b;
        };
        let k = checkpoints.partition_point(|&cp| cp <= b) - 1;
        let start = checkpoints[k];
        let within = text[start..]
            .char_indices()
            .take_while(|&(off, _)| start + off <= b)
            .count();
        k * STRIDE + within - 1
    }

    /// The byte range of the char range `chars` (clamped to the text).
    pub fn byte_range(&self, text: &str, chars: &Range<usize>) -> Range<usize> {
        let start = self.byte_of_char(text, chars.start);
        let end = self.byte_of_char(text, chars.end.max(chars.start));
        start..end
    }

    /// The text of the char range `chars` (clamped to the text).
    pub fn slice<'t>(&self, text: &'t str, chars: &Range<usize>) -> &'t str {
        &text[self.byte_range(text, chars)]
    }
}

/// The text of the char range `chars` of `text` (clamped): for one-off slices; use a
/// [`CharMap`] for many slices of one long text.
pub fn slice_chars<'t>(text: &'t str, chars: &Range<usize>) -> &'t str {
    CharMap::new(text).slice(text, chars)
}

/// The sentences of the char range `within` of `text`, as char ranges trimmed of surrounding
/// whitespace. A sentence ends after `.`, `!` or `?` (and closing quotes or brackets) followed
/// by whitespace and a word that does not start in lower case (a period after a title such as
/// "Mrs" or an initial ends none), or at a blank line.
pub fn sentences(map: &CharMap, text: &str, within: &Range<usize>) -> Vec<Range<usize>> {
    let part = map.slice(text, within);
    let chars: Vec<char> = part.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut end = None;
        if matches!(c, '.' | '!' | '?') {
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j], '"' | '\'' | '”' | '’' | ')' | ']') {
                j += 1;
            }
            let mut k = j;
            while k < chars.len() && chars[k].is_whitespace() {
                k += 1;
            }
            // "he said “go!” and went": a lower-case word after it goes on with the sentence
            let goes_on = (k < chars.len() && chars[k].is_lowercase())
                || (c == '.' && j == i + 1 && abbreviation(&chars[..i]));
            if (j == chars.len() || chars[j].is_whitespace()) && !goes_on {
                end = Some(j);
            }
        } else if c == '\n' && chars.get(i + 1) == Some(&'\n') {
            end = Some(i);
        }
        if let Some(e) = end {
            push_trimmed(&chars, start..e, within.start, &mut out);
            start = e;
            i = e.max(i + 1);
        } else {
            i += 1;
        }
    }
    push_trimmed(&chars, start..chars.len(), within.start, &mut out);
    out
}

/// Whether the word that ends `before` is a title or an initial, whose period ends no sentence.
fn abbreviation(before: &[char]) -> bool {
    const TITLES: [&str; 12] = [
        "Mr", "Mrs", "Ms", "Dr", "St", "Mt", "Prof", "Rev", "Capt", "Col", "Gen", "Messrs",
    ];
    let start = before
        .iter()
        .rposition(|c| !c.is_alphabetic())
        .map_or(0, |p| p + 1);
    let word: String = before[start..].iter().collect();
    let initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    initial || TITLES.contains(&word.as_str())
}

fn push_trimmed(chars: &[char], mut r: Range<usize>, base: usize, out: &mut Vec<Range<usize>>) {
    while r.start < r.end && chars[r.start].is_whitespace() {
        r.start += 1;
    }
    while r.end > r.start && chars[r.end - 1].is_whitespace() {
        r.end -= 1;
    }
    if r.start < r.end {
        out.push(base + r.start..base + r.end);
    }
}

/// The words of `text` that carry meaning for matching a question to a sentence: lower-cased
/// runs of letters and digits, without common function words, with a plural `s` removed.
pub fn content_words(text: &str) -> Vec<String> {
    content_word_ranges(text)
        .into_iter()
        .map(|(_, w)| w)
        .collect()
}

/// [`content_words`] with the byte range in `text` of each word as written.
pub fn content_word_ranges(text: &str) -> Vec<(Range<usize>, String)> {
    const STOP: [&str; 48] = [
        "a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "with", "and", "or", "but",
        "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "what", "which",
        "who", "whom", "whose", "when", "where", "why", "how", "that", "this", "these", "those",
        "it", "its", "he", "she", "his", "her", "they", "them", "their", "i", "you",
    ];
    let mut out = Vec::new();
    let mut start = None;
    for (b, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (start, c.is_alphanumeric()) {
            (None, true) => start = Some(b),
            (Some(s), false) => {
                start = None;
                let w = text[s..b].to_lowercase();
                if !STOP.contains(&w.as_str()) {
                    out.push((s..b, singular(w)));
                }
            }
            _ => {}
        }
    }
    out
}

/// `word` without a plural `s`: the final `s` of a word of more than three letters ("keys" ->
/// "key", "horses" -> "horse"), but not that of "-ss", "-us" or "-is" ("glass", "monstrous",
/// "thus", "analysis"), endings of singular words that English plurals do not have.
fn singular(word: String) -> String {
    let plural = word.len() > 3
        && word.ends_with('s')
        && !["ss", "us", "is"].iter().any(|e| word.ends_with(e));
    if plural {
        word[..word.len() - 1].to_owned()
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_and_byte_offsets_round_trip() {
        for text in [
            "plain ascii text",
            "naïve café — “quoted” ünïcödé text é",
            "",
        ] {
            let map = CharMap::new(text);
            assert_eq!(map.len_chars(), text.chars().count());
            for (c, (b, _)) in text.char_indices().enumerate() {
                assert_eq!(map.byte_of_char(text, c), b, "{text:?} char {c}");
                assert_eq!(map.char_of_byte(text, b), c, "{text:?} byte {b}");
            }
            assert_eq!(map.byte_of_char(text, map.len_chars() + 5), text.len());
        }
        let long: String = "é".repeat(500) + "abc";
        let map = CharMap::new(&long);
        assert_eq!(map.slice(&long, &(499..502)), "éab");
        // inside a two-byte char rounds down to its start
        assert_eq!(map.char_of_byte(&long, 201), 100);
    }

    #[test]
    fn sentences_are_char_ranges() {
        let text =
            "Über alles. He said “go!” and went.\n\nA heading\nThe end. Mrs. Fox met J. Smith.";
        let map = CharMap::new(text);
        let all = 0..map.len_chars();
        let got: Vec<&str> = sentences(&map, text, &all)
            .iter()
            .map(|r| map.slice(text, r))
            .collect();
        assert_eq!(
            got,
            [
                "Über alles.",
                "He said “go!” and went.",
                "A heading\nThe end.",
                "Mrs. Fox met J. Smith."
            ]
        );
    }

    #[test]
    fn content_words_drop_function_words() {
        assert_eq!(
            content_words("What is the pass key? Keys!"),
            ["pass", "key", "key"]
        );
    }

    #[test]
    fn only_a_plural_s_is_removed() {
        assert_eq!(
            content_words("Horses, glass, monstrous thus: analysis of the Kings' ways."),
            [
                "horse",
                "glass",
                "monstrous",
                "thus",
                "analysis",
                "king",
                "way"
            ]
        );
    }

    #[test]
    fn content_word_ranges_point_at_the_words_as_written() {
        let text = "Über the “Kings” — naïve";
        let got: Vec<(&str, String)> = content_word_ranges(text)
            .into_iter()
            .map(|(r, w)| (&text[r], w))
            .collect();
        assert_eq!(
            got,
            [
                ("Über", "über".to_owned()),
                ("Kings", "king".to_owned()),
                ("naïve", "naïve".to_owned())
            ]
        );
    }
}
