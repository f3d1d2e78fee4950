//! Markdown: pulldown-cmark events to text, YAML front matter, headings to chapters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memreader_fuzz::check_document;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = ingest::formats::markdown::parse_markdown(data) {
        check_document(&doc);
    }
});
