//! Shared by the test files: a small tokenizer trained on the bundled demo books, and a token
//! stream of those books.
#![allow(dead_code)] // each test binary uses its own part

use std::sync::OnceLock;

use memmamba_train::tokenizer::BookTokenizer;
use memmamba_train::tokens::{BookSpan, TokenStore};

pub fn demo_text() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("assets/demo exists")
        .map(|entry| entry.expect("readable dir").path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("UTF-8 demo book"))
        .collect()
}

/// A 600-entry tokenizer trained once per test binary.
pub fn small_tokenizer() -> &'static BookTokenizer {
    static TOKENIZER: OnceLock<BookTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let text = demo_text();
        let paragraphs: Vec<String> = text.split("\n\n").map(str::to_string).collect();
        BookTokenizer::train(paragraphs.into_iter(), 600, false).expect("training succeeds")
    })
}

/// The demo books as one token stream (of [`small_tokenizer`]), built once per test binary.
pub fn demo_store(tokenizer: &BookTokenizer) -> TokenStore {
    static STORE: OnceLock<TokenStore> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let ids = tokenizer.encode(&demo_text()).unwrap();
            let len = ids.len();
            let mut tokens: Vec<u16> = ids.into_iter().map(|t| t as u16).collect();
            tokens.push(tokenizer.end_of_text() as u16);
            let books = vec![BookSpan {
                id: "demo".into(),
                title: "Demo books".into(),
                start: 0,
                len,
            }];
            TokenStore { tokens, books }
        })
        .clone()
}
