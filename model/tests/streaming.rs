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
