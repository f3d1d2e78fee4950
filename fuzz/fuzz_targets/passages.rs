//! Passage splitting over documents from the text, Markdown and HTML parsers (the first byte
//! picks the parser): sentence ends, abbreviations, chapter and page cuts, overlong sentences.
#![no_main]

use ingest::formats::{html::parse_html, markdown::parse_markdown};
use libfuzzer_sys::fuzz_target;
use memreader_fuzz::check_document;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let doc = match pick % 3 {
        0 => ingest::parse_text(bytes).ok(),
        1 => parse_markdown(bytes).ok(),
        _ => parse_html(bytes).ok(),
    };
    if let Some(doc) = doc {
        check_document(&doc);
    }
});
