//! Format sniffing and plain text: encoding detection (UTF-8, BOM, Windows-1252), line
//! endings, Project Gutenberg boilerplate and metadata, chapter headings.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use memreader_fuzz::check_document;

const NAMES: [&str; 6] = ["a.txt", "a.md", "a.pdf", "a.epub", "a.html", "noextension"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let _ = ingest::sniff(bytes, Path::new(name));
    if let Ok(doc) = ingest::parse_text(bytes) {
        assert!(!doc.text.trim().is_empty());
        check_document(&doc);
    }
});
