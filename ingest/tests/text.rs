//! Specification of plain text parsing: `parse_text`.

use ingest::{parse_text, slice_chars, TextError};

const GUTENBERG: &str = "\
The Project Gutenberg eBook of Emma

Title: Emma

Author: Jane Austen

Language: English

*** START OF THE PROJECT GUTENBERG EBOOK EMMA ***

EMMA

By Jane Austen


CHAPTER I

Emma Woodhouse, handsome, clever, and rich, seemed to unite some of the best blessings.

She was the youngest of the two daughters.


CHAPTER II. Mr. Weston

Mr. Weston was a native of Highbury.

*** END OF THE PROJECT GUTENBERG EBOOK EMMA ***

Licence text that must not appear.
";

#[test]
fn gutenberg_header_gives_metadata_and_boilerplate_is_removed() {
    let doc = parse_text(GUTENBERG.as_bytes()).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Emma"));
    assert_eq!(doc.author.as_deref(), Some("Jane Austen"));
    assert_eq!(doc.language.as_deref(), Some("English"));
    assert!(doc.text.starts_with("EMMA\n\nBy Jane Austen"));
    assert!(doc.text.ends_with("Mr. Weston was a native of Highbury."));
    assert!(!doc.text.contains("Project Gutenberg"));
    assert!(!doc.text.contains("Licence"));
    assert!(doc.pages.is_empty());
}

#[test]
fn chapters_run_from_their_heading_to_the_next_heading() {
    let doc = parse_text(GUTENBERG.as_bytes()).unwrap();
    let titles: Vec<_> = doc.chapters.iter().map(|c| c.title.as_deref()).collect();
    assert_eq!(titles, [Some("CHAPTER I"), Some("CHAPTER II. Mr. Weston")]);
    let first = slice_chars(&doc.text, doc.chapters[0].range.clone());
    assert!(first.starts_with("CHAPTER I\n\nEmma Woodhouse"));
    assert!(first.ends_with("the two daughters."));
    let second = slice_chars(&doc.text, doc.chapters[1].range.clone());
    assert_eq!(
        second,
        "CHAPTER II. Mr. Weston\n\nMr. Weston was a native of Highbury."
    );
    assert!(doc.chapters[0].range.end <= doc.chapters[1].range.start);
}

#[test]
fn heading_forms_are_recognised_only_on_a_line_of_their_own_after_a_blank_line() {
    let text = "Intro.\n\nChapter 12.\n\nA.\n\nBOOK II\n\nB.\n\nPART ONE\n\nC.\n\n\
                Part of the day was spent walking.\nCHAPTER III\nstays in the paragraph.\n";
    let doc = parse_text(text.as_bytes()).unwrap();
    let titles: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| c.title.clone().unwrap())
        .collect();
    assert_eq!(titles, ["Chapter 12.", "BOOK II", "PART ONE"]);
    assert!(
        slice_chars(&doc.text, doc.chapters[2].range.clone()).ends_with("stays in the paragraph.")
    );
}

#[test]
fn a_heading_directly_followed_by_another_starts_one_chapter_with_both_titles() {
    let text = "Title page.\n\nVOLUME I\n\n\nCHAPTER I\n\nOne.\n\nCHAPTER II\n\nTwo.\n\n\
                VOLUME II\n\nCHAPTER I\n\nThree.";
    let doc = parse_text(text.as_bytes()).unwrap();
    let titles: Vec<_> = doc
        .chapters
        .iter()
        .map(|c| c.title.clone().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "VOLUME I / CHAPTER I",
            "CHAPTER II",
            "VOLUME II / CHAPTER I"
        ]
    );
    assert_eq!(
        slice_chars(&doc.text, doc.chapters[0].range.clone()),
        "VOLUME I\n\n\nCHAPTER I\n\nOne."
    );
    assert_eq!(
        slice_chars(&doc.text, doc.chapters[2].range.clone()),
        "VOLUME II\n\nCHAPTER I\n\nThree."
    );
}

#[test]
fn text_without_gutenberg_markers_is_kept_whole_without_metadata() {
    let doc = parse_text(b"Just a note.\nSecond line.\n").unwrap();
    assert_eq!(doc.text, "Just a note.\nSecond line.");
    assert_eq!((doc.title, doc.author, doc.language), (None, None, None));
    assert!(doc.chapters.is_empty());
}

#[test]
fn crlf_line_endings_become_lf() {
    let doc = parse_text(b"CHAPTER I\r\n\r\nOne line.\r\nTwo lines.\r\n").unwrap();
    assert_eq!(doc.text, "CHAPTER I\n\nOne line.\nTwo lines.");
    assert_eq!(doc.chapters.len(), 1);
}

#[test]
fn a_utf8_bom_is_stripped() {
    let doc = parse_text("\u{feff}Caf\u{e9} society.".as_bytes()).unwrap();
    assert_eq!(doc.text, "Café society.");
}

#[test]
fn invalid_utf8_is_read_as_windows_1252() {
    let doc = parse_text(b"Caf\xe9 \x93quoted\x94 \x80 na\xefve").unwrap();
    assert_eq!(doc.text, "Café “quoted” € naïve");
}

#[test]
fn empty_or_blank_input_is_an_error() {
    assert_eq!(parse_text(b""), Err(TextError::Empty));
    assert_eq!(parse_text(b" \r\n\t\n"), Err(TextError::Empty));
    assert_eq!(parse_text(b"\xEF\xBB\xBF"), Err(TextError::Empty));
    assert!(TextError::Empty.to_string().contains("no text"));
}

#[test]
fn binary_input_is_an_error() {
    assert_eq!(parse_text(b"PK\x03\x04\x00\x00abc"), Err(TextError::Binary));
    assert_eq!(
        parse_text(b"\x01\x02\x03\x04\x05ab"),
        Err(TextError::Binary)
    );
    assert_eq!(
        parse_text(&[0xff, 0xfe, b'H', 0, b'i', 0]),
        Err(TextError::Binary)
    );
    assert!(TextError::Binary
        .to_string()
        .contains("not look like plain text"));
}

fn chapter_titles(doc: &ingest::Document) -> Vec<&str> {
    doc.chapters
        .iter()
        .map(|c| c.title.as_deref().unwrap())
        .collect()
}

#[test]
fn a_collection_without_chapter_headings_is_divided_at_its_capital_titles() {
    let text = "STORIES FOR A WINTER\n\nA preface in ordinary words.\n\nCONTENTS\n\n    THE MILL       1\n    THE RIVER     9\n\n\nTHE MILL\n\n\nOnce there was a mill. Its wheel turned.\n\n\nTHE RIVER\nAND THE SEA\n\nThe river ran to the sea. SHOUTING in the middle of a line is no title.\n";
    let doc = parse_text(text.as_bytes()).unwrap();
    assert_eq!(
        chapter_titles(&doc),
        ["STORIES FOR A WINTER", "THE MILL", "THE RIVER AND THE SEA"]
    );
    assert!(slice_chars(&doc.text, doc.chapters[1].range.clone()).ends_with("Its wheel turned."));
    assert!(
        slice_chars(&doc.text, doc.chapters[2].range.clone()).starts_with("THE RIVER\nAND THE SEA")
    );
}

#[test]
fn capital_titles_are_not_used_when_keyword_headings_exist_or_when_there_is_only_one() {
    let keyworded = "A NOVEL\n\n\nCHAPTER I\n\nIt began.\n\n\nINTERLUDE\n\nA pause.\n\n\nCHAPTER II\n\nIt ended.\n";
    let doc = parse_text(keyworded.as_bytes()).unwrap();
    assert_eq!(chapter_titles(&doc), ["CHAPTER I", "CHAPTER II"]);

    let single = "Some prose here.\n\n\nTHE END\n";
    assert!(parse_text(single.as_bytes()).unwrap().chapters.is_empty());
}
