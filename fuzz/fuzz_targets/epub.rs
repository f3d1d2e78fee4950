//! EPUB: the zip archive, container.xml, the package document, the nav document or NCX and
//! the spine's XHTML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memreader_fuzz::check_document;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = ingest::formats::epub::parse_epub(data) {
        check_document(&doc);
    }
});
