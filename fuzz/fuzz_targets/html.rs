//! HTML and XHTML: html5ever through scraper, visible text, headings, metadata.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memreader_fuzz::check_document;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = ingest::formats::html::parse_html(data) {
        check_document(&doc);
    }
});
