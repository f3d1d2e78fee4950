//! The quality measures run end to end on a small untrained model: they stream the text,
//! produce one row or cell per setting, and leave out what the books cannot supply.

mod common;

use candle_core::Device;
use candle_nn::VarMap;
use common::{demo_store, small_tokenizer};
use memmamba::{Config, MemMamba};
use memmamba_train::eval::{passkey_grid, perplexity_vs_context, Reading};

fn untrained(vocab_size: usize) -> MemMamba {
    let mut cfg = Config::tiny();
    cfg.vocab_size = vocab_size;
    MemMamba::init(&cfg, &VarMap::new(), &Device::Cpu, 0).unwrap()
}

#[test]
fn perplexity_is_measured_per_context_and_lengths_beyond_every_book_are_left_out() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let model = untrained(tokenizer.vocab_size());
    let too_long = store.tokens.len() + 1;
    let rows =
        perplexity_vs_context(&model, tokenizer, &store, &[128, 300, too_long], 2, 16, 1).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.context).collect::<Vec<_>>(),
        vec![128, 300]
    );
    for row in &rows {
        assert_eq!(row.windows, 2);
        // An untrained model is about as unsure as a uniform guess over the vocabulary.
        let vocab = tokenizer.vocab_size() as f64;
        assert!(
            row.perplexity > vocab / 10.0 && row.perplexity < vocab * 10.0,
            "{row:?}"
        );
    }
    // The loss per byte is the loss per token over the bytes the scored tokens stand for: at
    // least one each, a few on average in the demo books. Every context scores the same tokens
    // (only what is read before them differs), so they stand for the same bytes.
    let tokens_per_byte: Vec<f64> = rows
        .iter()
        .map(|r| r.bits_per_byte * std::f64::consts::LN_2 / r.perplexity.ln())
        .collect();
    assert!(
        tokens_per_byte.iter().all(|&t| t > 0.1 && t < 1.0),
        "{tokens_per_byte:?}"
    );
    assert!(
        (tokens_per_byte[0] - tokens_per_byte[1]).abs() < 1e-9,
        "{tokens_per_byte:?}"
    );
}

#[test]
fn the_passkey_grid_has_one_cell_per_length_and_depth_with_all_trials_run() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let model = untrained(tokenizer.vocab_size());
    let cells = passkey_grid(
        &model,
        Reading::default(),
        tokenizer,
        &store,
        &[200, 400],
        &[0.0, 0.5, 1.0],
        &[2],
        1,
    )
    .unwrap();
    assert_eq!(cells.len(), 6);
    for (cell, (length, depth)) in cells.iter().zip([
        (200, 0.0),
        (200, 0.5),
        (200, 1.0),
        (400, 0.0),
        (400, 0.5),
        (400, 1.0),
    ]) {
        assert_eq!(
            (cell.length, cell.depth, cell.tally.trials),
            (length, depth, 2)
        );
        assert!(cell.tally.correct <= cell.tally.trials);
        assert!(cell.tally.beats_foil <= cell.tally.trials);
        assert!(cell.tally.wrong_first_token <= cell.tally.trials - cell.tally.correct);
        // Each digit of the key is stated by a token of the fact's sentence, so no more layers
        // hold a digit's note than hold a note of the sentence.
        assert_eq!(cell.tally.layers_holding_digit.len(), 5, "{cell:?}");
        for &layers in &cell.tally.layers_holding_digit {
            assert!(layers <= cell.tally.layers_holding_fact + 1e-9, "{cell:?}");
        }
        // An untrained model prices the answer (" NNNNN\n", a few tokens) near a uniform
        // guess over the vocabulary per token.
        let per_token = (tokenizer.vocab_size() as f64).ln();
        let answer_tokens = tokenizer.encode(" 12345\n").unwrap().len() as f64;
        assert!(
            (cell.tally.answer_nll / (answer_tokens * per_token) - 1.0).abs() < 0.5,
            "{cell:?}: {answer_tokens} tokens at ~{per_token:.2} nats"
        );
    }
}
