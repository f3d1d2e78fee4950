//! MODEL.md sections 4 and 5: the memory state is constant in size, saves and loads bit for
//! bit, refuses a state made with another configuration, and shows what the memory holds.

mod common;

use candle_core::{Device, Tensor};
use common::{busy_tiny, max_abs_diff, model, tokens};
use memmamba::{Config, MemoryState, ModelError, PoolPolicy};

#[test]
fn read_a_save_load_read_b_equals_reading_a_then_b() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    // 30 tokens: the snapshot is taken mid-chunk (30 % 4 = 2 pending notes)
    let a = tokens(2, 30, cfg.vocab_size, 1);
    let b = tokens(2, 23, cfg.vocab_size, 2);

    let mut whole = model.new_state(2).unwrap();
    model.read(&mut whole, &a).unwrap();
    let expected = model.read(&mut whole, &b).unwrap();

    let mut first = model.new_state(2).unwrap();
    model.read(&mut first, &a).unwrap();
    assert_eq!(first.pending_len(), 2);
    let bytes = first.to_bytes().unwrap();
    let mut resumed = MemoryState::from_bytes(&cfg, &bytes, &Device::Cpu).unwrap();
    assert_eq!(resumed.tokens_read(), 30);
    let got = model.read(&mut resumed, &b).unwrap();
    assert_eq!(max_abs_diff(&expected, &got), 0.0, "not bit for bit");
    assert_eq!(resumed.gate_counts(), whole.gate_counts());
    for l in 0..cfg.n_layer {
        for row in 0..2 {
            assert_eq!(resumed.pool_slots(l, row), whole.pool_slots(l, row));
        }
    }

    // the same through a file
    let path =
        std::env::temp_dir().join(format!("memmamba-state-{}.safetensors", std::process::id()));
    first.save(&path).unwrap();
    let mut from_file = MemoryState::load(&cfg, &path, &Device::Cpu).unwrap();
    std::fs::remove_file(&path).unwrap();
    let got = model.read(&mut from_file, &b).unwrap();
    assert_eq!(max_abs_diff(&expected, &got), 0.0);
}

/// A busy tiny model's state after reading 9 tokens, with its config.
fn state_after_nine_tokens() -> (Config, MemoryState) {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let mut state = model.new_state(1).unwrap();
    model
        .read(&mut state, &tokens(1, 9, cfg.vocab_size, 3))
        .unwrap();
    (cfg, state)
}

#[test]
fn a_state_made_with_another_config_is_refused_with_an_error() {
    let (cfg, state) = state_after_nine_tokens();
    let bytes = state.to_bytes().unwrap();

    let others = [
        busy_tiny(PoolPolicy::Fifo),
        Config {
            pool_slots: 8,
            ..cfg.clone()
        },
        Config {
            notes: false,
            ..cfg.clone()
        },
    ];
    for other in others {
        let err = MemoryState::from_bytes(&other, &bytes, &Device::Cpu).unwrap_err();
        assert!(
            matches!(err, ModelError::ConfigMismatch { .. }),
            "expected a config mismatch, got {err}"
        );
        // and a model of another config refuses to read into the state
        let other_model = common::model(&other);
        let mut copy = state.clone();
        let err = other_model
            .read(&mut copy, &tokens(1, 1, cfg.vocab_size, 4))
            .unwrap_err();
        assert!(matches!(err, ModelError::ConfigMismatch { .. }));
    }
}

#[test]
fn a_damaged_state_is_an_error_not_a_panic() {
    let (cfg, state) = state_after_nine_tokens();
    let bytes = state.to_bytes().unwrap();
    for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
        assert!(MemoryState::from_bytes(&cfg, &bytes[..cut], &Device::Cpu).is_err());
    }
    let garbage = vec![0xAB; 64];
    assert!(MemoryState::from_bytes(&cfg, &garbage, &Device::Cpu).is_err());
    // a header claiming a chunk phase the pending notes do not have (9 % 4 = 1 pending note)
    // (the JSON header sits inside the safetensors header as a string, so its quotes are escaped)
    let (from, to) = (br#"tokens_read\":9"#, br#"tokens_read\":8"#);
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    let mut edited = bytes.clone();
    edited[at..at + to.len()].copy_from_slice(to);
    let err = MemoryState::from_bytes(&cfg, &edited, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::Invalid { .. }), "{err}");
    // a header claiming a huge batch is refused before anything that size is allocated
    let (from, to) = (br#"batch\":1,"#, br#"batch\":9,"#);
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    let mut edited = bytes.clone();
    edited[at..at + to.len()].copy_from_slice(to);
    let err = MemoryState::from_bytes(&cfg, &edited, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("batch 9"), "{err}");
}

#[test]
fn a_version_1_state_loads_with_the_logarithms_of_its_scores() {
    use serde_json::Value;
    let (cfg, state) = state_after_nine_tokens();
    let bytes = state.to_bytes().unwrap();
    // The same state as version 1 wrote it: scores `s` where version 2 has `ln s`.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let json = &metadata.metadata().as_ref().unwrap()[memmamba::snapshot::STATE_KEY];
    let mut header: Value = serde_json::from_str(json).unwrap();
    header["format_version"] = 1.into();
    let exp = |v: Value| Value::from(v.as_f64().unwrap().exp());
    for layer in header["layers"].as_array_mut().unwrap() {
        let layer = layer.as_object_mut().unwrap();
        for row in layer["slots"].as_array_mut().unwrap() {
            for slot in row.as_array_mut().unwrap() {
                let slot = slot.as_object_mut().unwrap();
                let score = exp(slot.remove("log_score").unwrap());
                slot.insert("score".into(), score);
            }
        }
        let pending = layer.remove("pending_log_scores").unwrap();
        let pending: Vec<Vec<Value>> = serde_json::from_value::<Vec<Vec<Value>>>(pending)
            .unwrap()
            .into_iter()
            .map(|row| row.into_iter().map(exp).collect())
            .collect();
        layer.insert("pending_scores".into(), pending.into());
    }
    let metadata = std::collections::HashMap::from([(
        memmamba::snapshot::STATE_KEY.to_string(),
        header.to_string(),
    )]);
    let v1 = safetensors::serialize(file.tensors(), Some(metadata)).unwrap();

    let loaded = MemoryState::from_bytes(&cfg, &v1, &Device::Cpu).unwrap();
    assert_eq!(loaded.tokens_read(), 9);
    for l in 0..cfg.n_layer {
        let (want, got) = (
            state.pool_slots(l, 0).unwrap(),
            loaded.pool_slots(l, 0).unwrap(),
        );
        for (w, g) in want.iter().zip(got) {
            assert_eq!((w.valid, w.position), (g.valid, g.position));
            assert!((w.log_score - g.log_score).abs() < 1e-6, "{w:?} vs {g:?}");
        }
    }
    // A version this build does not know is refused, saying so.
    let newer = bytes.clone();
    let (from, to) = (br#"format_version\":2"#, br#"format_version\":3"#);
    let at = newer.windows(from.len()).position(|w| w == from).unwrap();
    let mut newer = newer;
    newer[at..at + to.len()].copy_from_slice(to);
    let err = MemoryState::from_bytes(&cfg, &newer, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("format version 3"), "{err}");
}

#[test]
fn the_state_size_is_the_same_after_1k_and_1m_tokens() {
    // The tiny model shrunk further (d 8, d_inner 8, N 4) and with a longer commit chunk, so
    // that a million tokens read in seconds; the pools and pending notes still change at every
    // chunk. Fifo, so that the pool provably keeps taking new notes to the end.
    let cfg = Config {
        d_model: 8,
        expand: 1,
        dt_rank: 1,
        d_state: 4,
        d_note: 8,
        chunk: 128,
        ..busy_tiny(PoolPolicy::Fifo)
    };
    let model = model(&cfg);
    let mut state = model.new_state(1).unwrap();
    let empty = state.size_bytes();
    let block = 1 << 16;
    let mut sizes = Vec::new();
    for target in [1 << 10, 1 << 20] {
        while state.tokens_read() < target {
            let n = block.min((target - state.tokens_read()) as usize);
            let seed = state.tokens_read();
            model
                .read(&mut state, &tokens(1, n, cfg.vocab_size, seed))
                .unwrap();
        }
        assert_eq!(state.tokens_read(), target);
        assert_eq!(state.pending_len(), 0);
        sizes.push((state.size_bytes(), state.to_bytes().unwrap().len()));
    }
    assert_eq!(sizes[0].0, sizes[1].0, "in-memory size changed");
    assert_eq!(sizes[0].0, empty);
    // the saved file differs only by the digits of the counters and positions in its header
    let (small, large) = (sizes[0].1 as f64, sizes[1].1 as f64);
    assert!((large - small).abs() / small < 0.05, "{sizes:?}");
    let slots = state.pool_slots(0, 0).unwrap();
    assert!(
        slots.iter().any(|s| s.position > 1 << 19),
        "the pool stopped changing"
    );
}

#[test]
fn the_last_token_read_exposes_its_attention_over_note_positions() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let mut state = model.new_state(1).unwrap();
    model
        .read(&mut state, &tokens(1, 42, cfg.vocab_size, 5))
        .unwrap();
    for l in 0..cfg.n_layer {
        let attn = state.attention(l).unwrap();
        let token = &attn.token[0];
        assert!(!token.is_empty(), "layer {l} saw no note");
        let total: f32 = token.iter().map(|w| w.weight).sum();
        assert!((total - 1.0).abs() < 1e-4, "weights sum to {total}");
        let pool: Vec<u64> = state
            .pool_slots(l, 0)
            .unwrap()
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.position)
            .collect();
        for w in token {
            assert_eq!(w.layer, l);
            // committed before the last chunk (token 41 is in chunk 40..44) or earlier in it
            assert!(pool.contains(&w.position) || (40..41).contains(&w.position));
        }
        if cfg.is_cross_layer(l) {
            let layers: Vec<usize> = attn.cross[0].iter().map(|w| w.layer).collect();
            assert!(layers.contains(&0) && layers.contains(&1), "{layers:?}");
        } else {
            assert!(attn.cross.is_empty());
        }
    }
}

#[test]
fn each_document_of_a_batch_exposes_its_own_last_token_attention() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let both = tokens(2, 42, cfg.vocab_size, 7);
    let mut batched = model.new_state(2).unwrap();
    model.read(&mut batched, &both).unwrap();
    for row in 0..2 {
        let mut alone = model.new_state(1).unwrap();
        model
            .read(&mut alone, &both.narrow(0, row, 1).unwrap())
            .unwrap();
        for l in 0..cfg.n_layer {
            let (got, want) = (batched.attention(l).unwrap(), alone.attention(l).unwrap());
            for (kind, got, want) in [
                ("token", &got.token[row], &want.token[0]),
                (
                    "cross",
                    got.cross.get(row).unwrap_or(&vec![]),
                    want.cross.first().unwrap_or(&vec![]),
                ),
            ] {
                assert_eq!(
                    got.len(),
                    want.len(),
                    "row {row} layer {l} {kind}: notes seen"
                );
                for (g, w) in got.iter().zip(want) {
                    assert_eq!(
                        (g.layer, g.position),
                        (w.layer, w.position),
                        "row {row} layer {l} {kind}"
                    );
                    assert!(
                        (g.weight - w.weight).abs() < 1e-5,
                        "row {row} layer {l} {kind}: {g:?} vs {w:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn reading_nothing_or_a_bad_token_is_an_error() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let mut state = model.new_state(1).unwrap();
    let empty = Tensor::zeros((1, 0), candle_core::DType::U32, &Device::Cpu).unwrap();
    assert!(model.read(&mut state, &empty).is_err());
    let bad = Tensor::new(&[[cfg.vocab_size as u32]], &Device::Cpu).unwrap();
    assert!(model.read(&mut state, &bad).is_err());
    let wrong_batch = tokens(2, 3, cfg.vocab_size, 1);
    assert!(model.read(&mut state, &wrong_batch).is_err());
    assert_eq!(state.tokens_read(), 0);
}
