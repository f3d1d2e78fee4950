//! MODEL.md section 5: the chunked-parallel forward and the streaming reads compute the same
//! function, across chunk boundaries and pool overflow, for both pool policies and gatings,
//! whatever the sizes of the reads.

mod common;

use candle_core::IndexOp;
use common::{busy_tiny, max_abs_diff, model, tokens};
use memmamba::{Gating, PoolPolicy};

const BATCH: usize = 2;
const LEN: usize = 181;

fn streaming_equals_chunked(policy: PoolPolicy, gating: Gating) {
    let cfg = busy_tiny(policy);
    let model = model(&cfg);
    let toks = tokens(BATCH, LEN, cfg.vocab_size, 7);
    let chunked = model.forward_gated(&toks, gating).unwrap();

    for read_size in [1, 7, 64, 100] {
        let mut state = model.new_state(BATCH).unwrap().with_gating(gating);
        let mut start = 0;
        while start < LEN {
            let n = read_size.min(LEN - start);
            let logits = model
                .read(&mut state, &toks.narrow(1, start, n).unwrap())
                .unwrap();
            start += n;
            let expected = chunked.i((.., start - 1)).unwrap();
            let diff = max_abs_diff(&logits, &expected);
            assert!(
                diff < 1e-4,
                "{policy:?}/{gating:?}, reads of {read_size}: token {} differs by {diff}",
                start - 1
            );
        }
        assert_eq!(state.tokens_read(), LEN as u64);
        for l in 0..cfg.n_layer {
            let slots = state.pool_slots(l, 0).unwrap();
            assert!(
                slots.iter().all(|s| s.valid),
                "layer {l}: the pool never filled"
            );
            // Under fifo every later note evicts the oldest; under priority, whether a later
            // note beats the weakest slot depends on the random weights, so only fifo is sure
            // to have admitted one after the pool filled.
            let newest = slots.iter().map(|s| s.position).max().unwrap();
            assert!(
                policy == PoolPolicy::Priority
                    || newest >= 2 * cfg.chunk as u64 * cfg.pool_slots as u64,
                "layer {l}: no note admitted after the pool filled: {slots:?}"
            );
        }
    }
}

#[test]
fn streaming_equals_chunked_priority_sparse() {
    streaming_equals_chunked(PoolPolicy::Priority, Gating::Sparse);
}

#[test]
fn streaming_equals_chunked_fifo_sparse() {
    streaming_equals_chunked(PoolPolicy::Fifo, Gating::Sparse);
}

#[test]
fn streaming_equals_chunked_priority_soft() {
    streaming_equals_chunked(PoolPolicy::Priority, Gating::Soft);
}

#[test]
fn streaming_equals_chunked_fifo_soft() {
    streaming_equals_chunked(PoolPolicy::Fifo, Gating::Soft);
}

/// Training reads a long sample as several sequences, carrying the memory from one to the next:
/// the training forward continued from a carried state is the forward over the whole, whether
/// or not a sequence ends at a commit boundary (here it does not).
#[test]
fn the_training_forward_continued_from_a_carried_state_is_the_forward_over_the_whole() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let toks = tokens(BATCH, LEN, cfg.vocab_size, 11);
    let whole = model.forward(&toks).unwrap();
    let mut state = model.new_state(BATCH).unwrap().with_gating(Gating::Soft);
    let mut start = 0;
    for end in [70, 111, LEN] {
        let (logits, score_logits) = model
            .forward_from(&mut state, &toks.narrow(1, start, end - start).unwrap())
            .unwrap();
        assert!(!score_logits.is_empty(), "the scorers' logits are returned");
        let diff = max_abs_diff(&logits, &whole.narrow(1, start, end - start).unwrap());
        assert!(diff < 1e-4, "tokens {start}..{end} differ by {diff}");
        state.detach();
        start = end;
    }
    assert_eq!(state.tokens_read(), LEN as u64);
}

/// Forgetting a row's recurrence zeroes its mixers' state and keeps its pool: its next logits
/// are neither those of the carried state nor those of an empty memory; other rows go on as if
/// nothing happened.
#[test]
fn forgetting_the_recurrence_of_a_row_keeps_its_notes_and_spares_the_other_rows() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let toks = tokens(BATCH, LEN, cfg.vocab_size, 13);
    let (first, next) = (
        toks.narrow(1, 0, 120).unwrap(),
        toks.narrow(1, 120, 1).unwrap(),
    );
    let mut carried = model.new_state(BATCH).unwrap();
    model.read(&mut carried, &first).unwrap();
    let mut forgotten = carried.clone();
    forgotten.forget_recurrence(&[true, false]).unwrap();
    assert!(
        forgotten.forget_recurrence(&[true]).is_err(),
        "one flag per row"
    );
    for l in 0..cfg.n_layer {
        assert_eq!(forgotten.pool_slots(l, 0), carried.pool_slots(l, 0));
    }

    let after_carried = model.read(&mut carried, &next).unwrap();
    let after_forgotten = model.read(&mut forgotten, &next).unwrap();
    let mut empty = model.new_state(BATCH).unwrap();
    let after_nothing = model.read(&mut empty, &next).unwrap();
    let row = |t: &candle_core::Tensor, r: usize| t.i(r).unwrap();
    assert!(max_abs_diff(&row(&after_forgotten, 0), &row(&after_carried, 0)) > 1e-3);
    assert!(max_abs_diff(&row(&after_forgotten, 0), &row(&after_nothing, 0)) > 1e-3);
    assert!(max_abs_diff(&row(&after_forgotten, 1), &row(&after_carried, 1)) < 1e-6);
}
