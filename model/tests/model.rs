//! MODEL.md sections 2, 3 and 5: causality, notes off is plain Mamba-1, the parameters are the
//! configured ones and all of them (the note scorer included) get gradients, the sparse gate,
//! and the weights file round trip.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use common::{busy_tiny, max_abs_diff, model, tokens};
use memmamba::{Config, Gating, MambaMixer, MemMamba, ModelError, PoolPolicy};

const LEN: usize = 45;

#[test]
fn changing_later_tokens_never_changes_earlier_logits() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let model = model(&cfg);
    let t = 13; // mid chunk
    let toks = tokens(2, LEN, cfg.vocab_size, 11);
    let changed = Tensor::cat(
        &[
            toks.narrow(1, 0, t + 1).unwrap(),
            tokens(2, LEN - t - 1, cfg.vocab_size, 12),
        ],
        1,
    )
    .unwrap();
    for gating in [Gating::Soft, Gating::Sparse] {
        let a = model.forward_gated(&toks, gating).unwrap();
        let b = model.forward_gated(&changed, gating).unwrap();
        let prefix = |x: &Tensor| x.narrow(1, 0, t + 1).unwrap();
        assert_eq!(max_abs_diff(&prefix(&a), &prefix(&b)), 0.0);
        let suffix = |x: &Tensor| x.narrow(1, t + 1, LEN - t - 1).unwrap();
        assert!(max_abs_diff(&suffix(&a), &suffix(&b)) > 0.0);
    }
}

/// Every weight of `model` by name, in name order, as plain values.
fn values(model: &MemMamba) -> Vec<(String, Vec<f32>)> {
    let named = model.named_weights().unwrap();
    named
        .into_iter()
        .map(|(name, w)| (name, w.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn var(varmap: &VarMap, name: &str) -> Tensor {
    varmap.data().lock().unwrap()[name].as_tensor().clone()
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    x.broadcast_div(&(ms + eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap()
}

/// Plain Mamba-1 (MODEL.md section 2) on the same weights: `x <- x + Mixer(RMSNorm(x))` per
/// layer, final RMSNorm, LM head tied to the embedding.
fn plain_mamba(cfg: &Config, varmap: &VarMap, toks: &Tensor) -> Tensor {
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
    let emb = var(varmap, "backbone.embeddings.weight");
    let (b, l) = toks.dims2().unwrap();
    let mut x = emb
        .index_select(&toks.flatten_all().unwrap(), 0)
        .unwrap()
        .reshape((b, l, cfg.d_model))
        .unwrap();
    for layer in 0..cfg.n_layer {
        let prefix = format!("backbone.layers.{layer}");
        let mixer = MambaMixer::new(cfg, vb.pp(format!("{prefix}.mixer"))).unwrap();
        let w = var(varmap, &format!("{prefix}.norm.weight"));
        let (y, _) = mixer
            .forward(&rms_norm(&x, &w, cfg.rms_norm_eps), None)
            .unwrap();
        x = (x + y).unwrap();
    }
    let w = var(varmap, "backbone.norm_f.weight");
    rms_norm(&x, &w, cfg.rms_norm_eps)
        .broadcast_matmul(&emb.t().unwrap())
        .unwrap()
}

#[test]
fn notes_off_is_plain_mamba_on_the_same_weights() {
    let cfg = Config {
        notes: false,
        ..Config::tiny()
    };
    let varmap = VarMap::new();
    let model = MemMamba::init(&cfg, &varmap, &Device::Cpu, 0).unwrap();
    let names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    assert!(names.iter().all(|n| n.contains(".mixer.")
        || n.ends_with("norm.weight")
        || n.ends_with("norm_f.weight")
        || n == "backbone.embeddings.weight"));
    let toks = tokens(2, LEN, cfg.vocab_size, 21);
    let expected = plain_mamba(&cfg, &varmap, &toks);
    let got = model.forward(&toks).unwrap();
    assert!(max_abs_diff(&expected, &got) < 1e-4);
    let mut state = model.new_state(2).unwrap();
    model
        .read(&mut state, &toks.narrow(1, 0, 20).unwrap())
        .unwrap();
    let last = model
        .read(&mut state, &toks.narrow(1, 20, LEN - 20).unwrap())
        .unwrap();
    assert!(max_abs_diff(&expected.i((.., LEN - 1)).unwrap(), &last) < 1e-4);
    assert_eq!(state.pool_slots(0, 0), None);
}

#[test]
fn the_parameters_are_exactly_the_configured_ones() {
    let variants = [
        busy_tiny(PoolPolicy::Priority),
        Config {
            cross_layer: false,
            ..Config::tiny()
        },
        Config {
            notes: false,
            ..Config::tiny()
        },
        Config {
            n_layer: 5,
            ..Config::tiny()
        },
    ];
    for cfg in variants {
        let varmap = VarMap::new();
        MemMamba::init(&cfg, &varmap, &Device::Cpu, 0).unwrap();
        let count: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(count, cfg.parameter_count(), "{cfg:?}");
    }
}

#[test]
fn a_seed_gives_the_same_fresh_weights_and_another_seed_other_ones() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let weights = |seed: u64| {
        let model = MemMamba::init(&cfg, &VarMap::new(), &Device::Cpu, seed).unwrap();
        values(&model)
    };
    let (first, again, other) = (weights(7), weights(7), weights(8));
    assert_eq!(first, again);
    for ((name, a), (_, b)) in first.iter().zip(&other) {
        // Constant initialisations (norms, D, A_log) agree; every drawn one differs (the
        // scorer's output bias is one drawn value).
        let constant = (a.len() > 1 && a.iter().all(|x| *x == a[0])) || name.ends_with("A_log");
        assert_eq!(constant, a == b, "{name}");
    }
    // The drawn values follow their hints: out_proj ~ N(0, 1 / (d_inner n_layer)).
    let out_proj = &first
        .iter()
        .find(|(name, _)| name == "backbone.layers.0.mixer.out_proj.weight")
        .unwrap()
        .1;
    let variance = out_proj.iter().map(|x| x * x).sum::<f32>() / out_proj.len() as f32;
    let expected = 1.0 / (cfg.d_inner() * cfg.n_layer) as f32;
    assert!(
        (variance / expected - 1.0).abs() < 0.1,
        "{variance} vs {expected}"
    );
}

#[test]
fn a_fresh_read_path_replaces_the_pool_attentions_and_gates_and_keeps_every_other_weight() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let trained = model(&cfg); // seed 0
    let drawn = VarMap::new();
    MemMamba::init(&cfg, &drawn, &Device::Cpu, 5).unwrap();
    let before = trained.named_weights().unwrap();
    let toks = tokens(1, LEN, cfg.vocab_size, 3);
    let mut state = trained.new_state(1).unwrap();
    let logits_before = trained.read(&mut state, &toks).unwrap();

    let replaced = trained.reinit_read_path(5).unwrap();

    let read_path = |name: &str| {
        ["token_attn", "token_gate", "layer_attn", "layer_gate"]
            .iter()
            .any(|module| name.split('.').any(|part| part == *module))
    };
    let expected = before.iter().filter(|(name, _)| read_path(name)).count();
    // Four projections and a gate's weight and bias per attention.
    let attentions = cfg.n_layer + (0..cfg.n_layer).filter(|&l| cfg.is_cross_layer(l)).count();
    assert_eq!(expected, 6 * attentions);
    assert_eq!(replaced, expected);
    for (name, old) in &before {
        let now = var(trained.varmap(), name);
        if read_path(name) {
            assert_eq!(max_abs_diff(&now, &var(&drawn, name)), 0.0, "{name}");
            assert!(max_abs_diff(&now, old) > 0.0, "{name}");
        } else {
            assert_eq!(max_abs_diff(&now, old), 0.0, "{name}");
        }
    }
    // The streaming path reads the same weights as training does.
    let mut state = trained.new_state(1).unwrap();
    let logits_after = trained.read(&mut state, &toks).unwrap();
    assert!(max_abs_diff(&logits_before, &logits_after) > 0.0);
}

#[test]
fn every_parameter_gets_a_gradient_including_the_note_scorer() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let varmap = VarMap::new();
    let model = MemMamba::init(&cfg, &varmap, &Device::Cpu, 0).unwrap();
    let toks = tokens(2, 24, cfg.vocab_size, 31);
    let logits = model.forward(&toks.narrow(1, 0, 23).unwrap()).unwrap();
    let targets = toks.narrow(1, 1, 23).unwrap().flatten_all().unwrap();
    let loss = candle_nn::loss::cross_entropy(
        &logits.reshape((2 * 23, cfg.vocab_size)).unwrap(),
        &targets,
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    for (name, v) in data.iter() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let size = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            size > 0.0 && size.is_finite(),
            "{name}: gradient norm {size}"
        );
    }
    for scorer in ["w1.weight", "w1.bias", "w2.weight", "w2.bias"] {
        assert!(data.contains_key(&format!("backbone.layers.0.notes.{scorer}")));
    }
}

#[test]
fn the_sparse_gate_skips_reads_below_tau2_and_counts_them() {
    let base = busy_tiny(PoolPolicy::Priority);
    let toks = tokens(1, LEN, base.vocab_size, 41);
    let varmap = VarMap::new();
    let model = MemMamba::init(&base, &varmap, &Device::Cpu, 0).unwrap();
    // a plain safetensors file without our config metadata loads into any config of its shapes
    let path = std::env::temp_dir().join(format!("memmamba-gate-{}.st", std::process::id()));
    varmap.save(&path).unwrap();
    let with_tau2 = |tau2: f64| {
        let cfg = Config {
            tau2,
            ..base.clone()
        };
        MemMamba::load(&cfg, &path, &Device::Cpu).unwrap()
    };
    let run = |m: &MemMamba| {
        let mut state = m.new_state(1).unwrap();
        let logits = m.read(&mut state, &toks).unwrap();
        (logits, state.gate_counts(), state.skip_rate().unwrap())
    };
    // reads: each layer's token gate plus the cross-layer gate of layer 1, per token
    let reads = (LEN * (base.n_layer + 1)) as u64;

    let (never, counts, rate) = run(&with_tau2(1e-9));
    assert_eq!(counts, (reads, 0));
    assert_eq!(rate, 0.0);
    let soft = model.forward(&toks).unwrap().i((.., LEN - 1)).unwrap();
    assert!(
        max_abs_diff(&never, &soft) < 1e-4,
        "no skip must equal the soft gate"
    );

    let (always, counts, rate) = run(&with_tau2(1.0 - 1e-9));
    assert_eq!(counts, (reads, reads));
    assert_eq!(rate, 1.0);
    let notes_off = Config {
        notes: false,
        ..base.clone()
    };
    let plain = plain_mamba(&notes_off, &varmap, &toks)
        .i((.., LEN - 1))
        .unwrap();
    assert!(
        max_abs_diff(&always, &plain) < 1e-4,
        "all skipped must read no note"
    );

    let (_, (_, skips), _) = run(&with_tau2(0.5));
    assert!(skips > 0 && skips < reads, "{skips} of {reads}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn weights_save_and_load_give_the_same_model() {
    let cfg = busy_tiny(PoolPolicy::Fifo);
    let original = model(&cfg);
    let path = std::env::temp_dir().join(format!(
        "memmamba-weights-{}.safetensors",
        std::process::id()
    ));
    original.save(&path).unwrap();
    let loaded = MemMamba::load(&cfg, &path, &Device::Cpu).unwrap();
    std::fs::remove_file(&path).unwrap();
    let toks = tokens(1, 20, cfg.vocab_size, 51);
    let a = original.forward(&toks).unwrap();
    let b = loaded.forward(&toks).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);

    let bytes = original.weights_to_bytes().unwrap();
    let other = Config {
        d_note: 8,
        ..cfg.clone()
    };
    let err = MemMamba::weights_from_bytes(&other, &bytes, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::ConfigMismatch { .. }), "{err}");
    assert!(MemMamba::weights_from_bytes(&cfg, &bytes[..bytes.len() / 2], &Device::Cpu).is_err());
    let missing = MemMamba::load(&cfg, "/nonexistent/weights.safetensors", &Device::Cpu);
    assert!(matches!(missing, Err(ModelError::Io { .. })));
}

#[test]
fn quantized_weights_keep_each_matrix_within_half_a_step_in_under_half_the_bytes() {
    let cfg = busy_tiny(PoolPolicy::Priority);
    let original = model(&cfg);
    let full = original.weights_to_bytes().unwrap();
    let packed = original.quantized_weights_to_bytes().unwrap();
    // A quarter for the matrices; the tiny model's vectors and file header weigh the rest.
    assert!(
        packed.len() * 2 < full.len(),
        "{} quantised bytes vs {} f32 bytes",
        packed.len(),
        full.len()
    );
    let loaded = MemMamba::weights_from_bytes(&cfg, &packed, &Device::Cpu).unwrap();
    let vars = original.varmap().data().lock().unwrap();
    let back = loaded.varmap().data().lock().unwrap();
    for (name, var) in vars.iter() {
        let (w, q) = (var.as_tensor(), back[name].as_tensor());
        if w.rank() != 2 {
            assert_eq!(
                max_abs_diff(w, q),
                0.0,
                "{name} is not a matrix: kept exactly"
            );
            continue;
        }
        // Each row's error is at most half its quantisation step, max|row| / 127 / 2.
        let step = (w.abs().unwrap().max_keepdim(1).unwrap() / 127.0).unwrap();
        let err = (w - q).unwrap().abs().unwrap().max_keepdim(1).unwrap();
        let ratio = (err / step)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(ratio <= 0.5 + 1e-3, "{name}: error {ratio} steps");
    }
    drop((vars, back));

    // Codes without their scales' shape are refused, naming the tensor.
    let mut tensors = candle_core::safetensors::load_buffer(&packed, &Device::Cpu).unwrap();
    let name = "backbone.embeddings.weight.q8_scale";
    tensors.insert(
        name.into(),
        Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let bad = safetensors::serialize(tensors, None).unwrap();
    let err = MemMamba::weights_from_bytes(&cfg, &bad, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("backbone.embeddings.weight"),
        "{err}"
    );
}
