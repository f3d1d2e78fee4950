//! Shared parts of the fuzz targets: the model configuration the model-file targets load
//! against, and the invariants every parsed document must keep.

use candle_core::Device;
use ingest::{split_passages, CharIndex, Document, MAX_WORDS};
use memmamba::{Config, MemMamba};

/// A very small but complete model configuration (notes, pool, cross-layer reads), so that
/// seed state and weights files are a few KiB and each run allocates little.
pub fn fuzz_config() -> Config {
    Config {
        vocab_size: 16,
        d_model: 8,
        n_layer: 2,
        d_state: 2,
        d_conv: 2,
        expand: 1,
        dt_rank: 1,
        pool_slots: 2,
        d_note: 4,
        heads: 1,
        chunk: 2,
        cross_layer_period: 2,
        ..Config::tiny()
    }
}

/// A freshly initialised model of [`fuzz_config`] on the CPU.
pub fn fuzz_model() -> MemMamba {
    let varmap = candle_nn::VarMap::new();
    MemMamba::init(&fuzz_config(), &varmap, &Device::Cpu).expect("the fuzz config is valid")
}

/// What every parser promises of a document, and what passage splitting promises of it:
/// sections (char ranges) ordered and inside the text, passages inside the text, in order, not
/// overlapping, of at most [`MAX_WORDS`] words, pointing at existing chapters and pages.
pub fn check_document(doc: &Document) {
    let len = doc.text.chars().count();
    let index = CharIndex::new(&doc.text);
    for sections in [&doc.chapters, &doc.pages] {
        let mut previous_start = 0;
        for section in sections {
            assert!(
                section.range.start <= section.range.end && section.range.end <= len,
                "section {:?} outside a text of {len} chars",
                section.range
            );
            assert!(
                section.range.start >= previous_start,
                "sections out of order"
            );
            previous_start = section.range.start;
        }
    }
    let passages = split_passages(doc, "fuzz");
    let mut previous_end = 0;
    for passage in &passages {
        assert!(
            previous_end <= passage.range.start
                && passage.range.start < passage.range.end
                && passage.range.end <= len,
            "passage {:?} after {previous_end} in a text of {len} chars",
            passage.range
        );
        previous_end = passage.range.end;
        assert!(passage.chapter.is_none_or(|c| c < doc.chapters.len()));
        assert!(passage.page.is_none_or(|p| p < doc.pages.len()));
        let words = index
            .slice(passage.range.clone())
            .split_whitespace()
            .count();
        assert!(words <= MAX_WORDS, "a passage of {words} words");
    }
}
