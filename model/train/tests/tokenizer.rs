//! The tokenizer: byte-level BPE that encodes any text and decodes it back exactly.

mod common;

use common::{demo_text, small_tokenizer};
use memmamba_train::tokenizer::{BookTokenizer, END_OF_TEXT};

#[test]
fn every_string_round_trips_byte_for_byte() {
    let tokenizer = small_tokenizer();
    for text in [
        "It was the best of times, it was the worst of times.",
        "  leading spaces, trailing tabs\t\t\nand CRLF\r\n",
        "Ünïcödé, 日本語, emoji 📚🦀, RTL שלום, combining e\u{301}",
        "\u{0}\u{1}\u{7f} control bytes",
        "",
    ] {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(tokenizer.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn the_bytes_each_token_stands_for_add_up_to_the_text_encoded() {
    let plain = small_tokenizer();
    let digits = plain.with_digits_split().unwrap();
    for tokenizer in [plain, &digits] {
        let table = tokenizer.bytes_per_token();
        assert_eq!(table.len(), tokenizer.vocab_size());
        for text in [
            "In 1815 the 3rd regiment marched 2,400 miles.",
            "Ünïcödé, 日本語, emoji 📚🦀, combining e\u{301}",
        ] {
            let ids = tokenizer.encode(text).unwrap();
            let bytes: usize = ids.iter().map(|&id| table[id as usize]).sum();
            assert_eq!(bytes, text.len(), "{text:?} as {ids:?}");
        }
    }
}

#[test]
fn merges_make_common_english_shorter_than_its_bytes() {
    let tokenizer = small_tokenizer();
    let text = "The king and the queen went into the garden, and the children followed them.";
    let ids = tokenizer.encode(text).unwrap();
    assert!(
        ids.len() * 2 < text.len(),
        "{} tokens for {} bytes",
        ids.len(),
        text.len()
    );
    assert!(tokenizer.vocab_size() <= 600);
}

#[test]
fn the_end_of_text_marker_is_id_0_and_never_comes_from_user_text() {
    let tokenizer = small_tokenizer();
    assert_eq!(tokenizer.end_of_text(), 0);
    let text = format!("a book that quotes {END_OF_TEXT} in its text");
    let ids = tokenizer.encode(&text).unwrap();
    assert!(!ids.contains(&0), "{ids:?}");
    assert_eq!(tokenizer.decode(&ids).unwrap(), text);
}

#[test]
fn save_and_load_give_the_same_ids() {
    let tokenizer = small_tokenizer();
    let dir = std::env::temp_dir().join(format!("memmamba-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokenizer.json");
    tokenizer.save(&path).unwrap();
    let loaded = BookTokenizer::load(&path).unwrap();
    let text = demo_text();
    let sample = &text[..text
        .char_indices()
        .nth(5000)
        .map(|(i, _)| i)
        .unwrap_or(text.len())];
    assert_eq!(
        loaded.encode(sample).unwrap(),
        tokenizer.encode(sample).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loading_a_file_that_is_not_a_tokenizer_names_the_file() {
    let dir = std::env::temp_dir().join(format!("memmamba-tokenizer-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("not-a-tokenizer.json");
    std::fs::write(&path, b"{\"hello\": 1}").unwrap();
    let err = BookTokenizer::load(&path)
        .err()
        .expect("an error")
        .to_string();
    assert!(err.contains("not-a-tokenizer.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn with_digits_split_every_digit_of_a_number_is_a_token_and_the_rest_encodes_as_before() {
    let tokenizer = small_tokenizer();
    let text = demo_text();
    let words = &text[..text.char_indices().nth(3000).map_or(text.len(), |(i, _)| i)];
    let split = tokenizer.with_digits_split().unwrap();
    assert_eq!(split.vocab_size(), tokenizer.vocab_size());
    let digit_free: String = words.chars().filter(|c| !c.is_ascii_digit()).collect();
    assert_eq!(
        split.encode(&digit_free).unwrap(),
        tokenizer.encode(&digit_free).unwrap()
    );
    for number in [
        " The pass key is 66796.",
        "in 1848 (p. 302), 3,000 pounds",
        "A1b22",
    ] {
        let ids = split.encode(number).unwrap();
        assert_eq!(split.decode(&ids).unwrap(), number);
        let digits: Vec<String> = ids
            .iter()
            .map(|&id| split.decode(&[id]).unwrap())
            .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let expected = number.chars().filter(char::is_ascii_digit).count();
        assert_eq!(digits.len(), expected, "{number:?}: {digits:?}");
        assert!(
            digits.iter().all(|t| t.trim_start().len() == 1),
            "{number:?}: {digits:?}"
        );
    }
}
