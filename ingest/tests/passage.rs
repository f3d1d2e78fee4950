//! Specification of passage splitting: `split_passages`.

use ingest::{
    char_range_to_bytes, parse_text, slice_chars, split_passages, CharIndex, Document, Passage,
    MAX_WORDS, MIN_WORDS,
};

/// `count` sentences of nine or ten words, with abbreviations and quoted endings mixed in.
fn prose(count: usize) -> String {
    (0..count)
        .map(|n| match n % 4 {
            0 => format!("Mr. Knightley walked to Highbury on morning number {n}."),
            1 => format!("\"Is it far, Mrs. Weston?\" asked Emma on day {n}."),
            2 => format!("Dr. Perry said that St. Mary's was quite near {n}."),
            _ => format!("She said it was \"not at all far, dear {n}.\""),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn book() -> Document {
    let text = format!(
        "A PREFACE\n\n{}\n\n\nCHAPTER I\n\n{}\n\n{}\n\n\nCHAPTER II\n\n{}\n",
        prose(3),
        prose(40),
        prose(45),
        prose(100)
    );
    parse_text(text.as_bytes()).unwrap()
}

fn words(doc: &Document, passage: &Passage) -> usize {
    slice_chars(&doc.text, passage.range.clone())
        .split_whitespace()
        .count()
}

fn ends_a_sentence(text: &str) -> bool {
    let trimmed = text.trim_end_matches(['"', '\'', '”', '’', ')']);
    trimmed.ends_with(['.', '!', '?'])
}

#[test]
fn passages_cover_the_text_contiguously_apart_from_whitespace() {
    let doc = book();
    let passages = split_passages(&doc, "emma");
    assert!(passages.len() > 3);
    assert_eq!(
        slice_chars(&doc.text, 0..passages[0].range.start).trim(),
        ""
    );
    for pair in passages.windows(2) {
        assert!(pair[0].range.end <= pair[1].range.start);
        assert_eq!(
            slice_chars(&doc.text, pair[0].range.end..pair[1].range.start).trim(),
            ""
        );
    }
    assert_eq!(passages.last().unwrap().range.end, doc.text.chars().count());
}

#[test]
fn passages_have_150_to_300_words_except_a_chapters_short_last_one() {
    let doc = book();
    let passages = split_passages(&doc, "emma");
    for (i, passage) in passages.iter().enumerate() {
        let count = words(&doc, passage);
        assert!(count <= MAX_WORDS, "passage {i} has {count} words");
        let last_of_chapter = passages
            .get(i + 1)
            .is_none_or(|next| next.chapter != passage.chapter);
        assert!(
            last_of_chapter || count >= MIN_WORDS,
            "passage {i} has {count} words"
        );
    }
}

#[test]
fn passages_end_at_sentence_ends_and_never_split_an_abbreviation() {
    let doc = book();
    for passage in split_passages(&doc, "emma") {
        let text = slice_chars(&doc.text, passage.range.clone());
        assert!(ends_a_sentence(text), "passage ends mid-sentence: {text:?}");
        for abbreviation in ["Mr.", "Mrs.", "Dr.", "St."] {
            assert!(!text.ends_with(abbreviation));
        }
        assert!(!text.starts_with("Knightley") && !text.starts_with("Mary's"));
    }
}

#[test]
fn passages_know_their_chapter_and_stay_inside_it() {
    let doc = book();
    let passages = split_passages(&doc, "emma");
    assert_eq!(passages[0].chapter, None);
    assert!(slice_chars(&doc.text, passages[0].range.clone()).starts_with("A PREFACE"));
    for passage in &passages {
        if let Some(index) = passage.chapter {
            let chapter = &doc.chapters[index].range;
            assert!(chapter.start <= passage.range.start && passage.range.end <= chapter.end);
        }
        assert_eq!(passage.page, None);
    }
    let first_of_two = passages.iter().find(|p| p.chapter == Some(1)).unwrap();
    assert!(slice_chars(&doc.text, first_of_two.range.clone()).starts_with("CHAPTER II"));
}

#[test]
fn ids_are_the_doc_id_and_the_start_offset_and_are_stable() {
    let doc = book();
    let passages = split_passages(&doc, "emma");
    for passage in &passages {
        assert_eq!(passage.id, format!("emma:{}", passage.range.start));
        assert_eq!(passage.doc_id, "emma");
    }
    assert_eq!(passages, split_passages(&doc, "emma"));
}

#[test]
fn a_sentence_longer_than_the_limit_is_cut_at_word_boundaries() {
    let long = vec!["word"; 700].join(" ") + ".";
    let doc = parse_text(long.as_bytes()).unwrap();
    let passages = split_passages(&doc, "long");
    let counts: Vec<_> = passages.iter().map(|p| words(&doc, p)).collect();
    assert_eq!(counts, [300, 300, 100]);
    for passage in &passages {
        let text = slice_chars(&doc.text, passage.range.clone());
        assert!(text.starts_with("word") && (text.ends_with("word") || text.ends_with("word.")));
    }
}

#[test]
fn a_short_document_is_one_passage() {
    let doc = parse_text("Dr. Watson arrived. \"Hello!\" he said.".as_bytes()).unwrap();
    let passages = split_passages(&doc, "d");
    assert_eq!(passages.len(), 1);
    assert_eq!(passages[0].range, 0..doc.text.chars().count());
}

#[test]
fn char_index_converts_offsets_in_text_with_accents_cjk_and_emoji() {
    // 1-, 2-, 3- and 4-byte chars, long enough to cross several checkpoints.
    let text = "aé中🦀 ".repeat(60);
    let index = CharIndex::new(&text);
    let starts: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    for (c, &byte) in starts.iter().enumerate() {
        assert_eq!(index.byte(c), byte, "char {c}");
        assert_eq!(index.char(byte), c, "byte {byte}");
        assert_eq!(
            index.slice(c..c + 1),
            &text[byte..starts.get(c + 1).copied().unwrap_or(text.len())]
        );
    }
    let chars = starts.len();
    assert_eq!(
        (index.byte(chars), index.byte(chars + 5)),
        (text.len(), text.len())
    );
    assert_eq!(index.char(text.len()), chars);
    assert_eq!(char_range_to_bytes(&text, 1..4), 1..10);
    assert_eq!(slice_chars(&text, 1..4), "é中🦀");
    assert_eq!(slice_chars(&text, chars - 2..chars + 9), "🦀 ");
}

#[test]
fn passages_of_text_with_accents_cjk_and_emoji_are_char_ranges() {
    let sentences = |count: usize| -> String {
        (0..count)
            .map(|n| match n % 3 {
                0 => format!("Élodie a mangé un gâteau 🍰 à Zürich, matin {n}."),
                1 => format!("Le 東京 train partit à l'heure, numéro {n}."),
                _ => format!("Tout était calme 🌙 près du château {n}."),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = format!(
        "CHAPTER I\n\n{}\n\n\nCHAPTER II\n\n{}\n",
        sentences(90),
        sentences(60)
    );
    let doc = parse_text(text.as_bytes()).unwrap();
    let chars = doc.text.chars().count();
    assert!(chars < doc.text.len());
    assert_eq!(doc.chapters[1].range.end, chars);
    assert!(
        slice_chars(&doc.text, doc.chapters[1].range.clone()).starts_with("CHAPTER II\n\nÉlodie")
    );
    let passages = split_passages(&doc, "fr");
    assert!(passages.len() >= 4, "{}", passages.len());
    assert_eq!(passages.last().unwrap().range.end, chars);
    for pair in passages.windows(2) {
        assert_eq!(
            slice_chars(&doc.text, pair[0].range.end..pair[1].range.start).trim(),
            ""
        );
    }
    for passage in &passages {
        let text = slice_chars(&doc.text, passage.range.clone());
        assert!(ends_a_sentence(text), "{text:?}");
        assert!(text.starts_with(['É', 'L', 'T', 'C']), "{text:?}");
        assert_eq!(passage.id, format!("fr:{}", passage.range.start));
    }
    // Past the first passage, char offsets are well below byte offsets.
    let second = &passages[1];
    assert!(char_range_to_bytes(&doc.text, second.range.clone()).start > second.range.start + 100);
}
