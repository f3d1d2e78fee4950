//! Specification of passage splitting: `split_passages`.

use ingest::{parse_text, split_passages, Document, Passage, MAX_WORDS, MIN_WORDS};

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
    doc.text[passage.range.clone()].split_whitespace().count()
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
    assert_eq!(doc.text[..passages[0].range.start].trim(), "");
    for pair in passages.windows(2) {
        assert!(pair[0].range.end <= pair[1].range.start);
        assert_eq!(doc.text[pair[0].range.end..pair[1].range.start].trim(), "");
    }
    assert_eq!(passages.last().unwrap().range.end, doc.text.len());
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
        let text = &doc.text[passage.range.clone()];
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
    assert!(doc.text[passages[0].range.clone()].starts_with("A PREFACE"));
    for passage in &passages {
        if let Some(index) = passage.chapter {
            let chapter = &doc.chapters[index].range;
            assert!(chapter.start <= passage.range.start && passage.range.end <= chapter.end);
        }
        assert_eq!(passage.page, None);
    }
    let first_of_two = passages.iter().find(|p| p.chapter == Some(1)).unwrap();
    assert!(doc.text[first_of_two.range.clone()].starts_with("CHAPTER II"));
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
        let text = &doc.text[passage.range.clone()];
        assert!(text.starts_with("word") && (text.ends_with("word") || text.ends_with("word.")));
    }
}

#[test]
fn a_short_document_is_one_passage() {
    let doc = parse_text("Dr. Watson arrived. \"Hello!\" he said.".as_bytes()).unwrap();
    let passages = split_passages(&doc, "d");
    assert_eq!(passages.len(), 1);
    assert_eq!(passages[0].range, 0..doc.text.len());
}
