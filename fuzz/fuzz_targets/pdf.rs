//! PDF: the in-process extraction the worker runs (lopdf + pdf-extract, panics caught as the
//! worker catches them), then the document built from the pages. A panic the wrapper does not
//! catch, a stack overflow, a hang or a memory blow-up is a finding.
#![no_main]

use ingest::formats::pdf::pdf_document;
use ingest::worker::extract_catching;
use libfuzzer_sys::fuzz_target;
use memreader_fuzz::check_document;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = extract_catching(data) {
        if let Ok(doc) = pdf_document(text) {
            check_document(&doc);
        }
    }
});
