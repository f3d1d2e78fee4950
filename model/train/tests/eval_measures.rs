//! The measurements added for EVAL.md's model-quality part (multi-key retrieval, recall of
//! real text, the ETMF / ECLMF curves) and the report's tables and plots, end to end on a tiny
//! untrained model.

mod common;

use candle_core::Device;
use candle_nn::VarMap;
use common::{demo_store, small_tokenizer};
use memmamba::Rng;
use memmamba::{Config, Gating, MemMamba};
use memmamba_train::eval::{multikey_grid, passkey_grid, recall_vs_distance, Reading};
use memmamba_train::fidelity::{fidelity, probe_fidelity, quarter_layers, FidelityConfig};
use memmamba_train::report::{evaluate, markdown, write_plots, EvalPlan, Measure};

fn untrained(vocab_size: usize, layers: usize, notes: bool) -> MemMamba {
    let mut cfg = Config::tiny();
    cfg.vocab_size = vocab_size;
    cfg.n_layer = layers;
    cfg.notes = notes;
    MemMamba::init(&cfg, &VarMap::new(), &Device::Cpu, 0).unwrap()
}

fn fidelity_config(layers: Vec<usize>) -> FidelityConfig {
    FidelityConfig {
        lags: vec![1, 4, 16],
        layers,
        fit_rows: 40,
        test_rows: 12,
        lead: 8,
        batch: 8,
        seed: 3,
    }
}

#[test]
fn multikey_cells_cover_every_length_and_key_count_and_leave_out_what_no_book_holds() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let model = untrained(tokenizer.vocab_size(), 2, true);
    let too_long = 2 * store.tokens.len();
    let cells = multikey_grid(
        &model,
        Reading::default(),
        tokenizer,
        &store,
        &[300, too_long],
        &[2, 5],
        2,
        1,
    )
    .unwrap();
    let got: Vec<_> = cells
        .iter()
        .map(|c| (c.length, c.keys, c.tally.trials))
        .collect();
    assert_eq!(
        got,
        vec![(300, 2, 2), (300, 5, 2), (too_long, 2, 0), (too_long, 5, 0)]
    );
    assert!(cells.iter().all(|c| c.tally.correct <= c.tally.trials));
}

#[test]
fn passkey_trials_can_differ_per_length() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let model = untrained(tokenizer.vocab_size(), 2, true);
    let cells = passkey_grid(
        &model,
        Reading::default(),
        tokenizer,
        &store,
        &[150, 200],
        &[0.5],
        &[3, 1],
        1,
    )
    .unwrap();
    assert_eq!(
        cells
            .iter()
            .map(|c| (c.length, c.tally.trials))
            .collect::<Vec<_>>(),
        vec![(150, 3), (200, 1)]
    );
}

#[test]
fn the_pool_holds_the_asked_fact_in_every_layer_when_it_keeps_every_note_and_in_none_when_it_notes_nothing(
) {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let layers_holding = |tau1: f64| {
        let mut cfg = Config::tiny();
        cfg.vocab_size = tokenizer.vocab_size();
        cfg.n_layer = 3;
        cfg.pool_slots = 512;
        cfg.tau1 = tau1;
        let model = MemMamba::init(&cfg, &VarMap::new(), &Device::Cpu, 0).unwrap();
        let cells = multikey_grid(
            &model,
            Reading::default(),
            tokenizer,
            &store,
            &[300],
            &[3],
            2,
            1,
        )
        .unwrap();
        assert_eq!(cells[0].tally.trials, 2);
        cells[0].tally.layers_holding_fact
    };
    // An untrained scorer gives scores near one half.
    assert_eq!(layers_holding(1e-6), 3.0);
    assert_eq!(layers_holding(1.0 - 1e-6), 0.0);
}

#[test]
fn the_sparse_gate_skips_reads_below_tau2_and_the_soft_gate_none() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let skip_rate = |tau2: f64, gating: Gating, pool_only: bool| {
        let mut cfg = Config::tiny();
        cfg.vocab_size = tokenizer.vocab_size();
        cfg.n_layer = 2;
        cfg.tau2 = tau2;
        let model = MemMamba::init(&cfg, &VarMap::new(), &Device::Cpu, 0).unwrap();
        let reading = Reading { gating, pool_only };
        let cells = passkey_grid(&model, reading, tokenizer, &store, &[200], &[0.5], &[2], 1);
        cells.unwrap()[0].tally.gate_skip_rate
    };
    for pool_only in [false, true] {
        assert_eq!(skip_rate(1.0 - 1e-6, Gating::Sparse, pool_only), 1.0);
        assert_eq!(skip_rate(1e-6, Gating::Sparse, pool_only), 0.0);
        assert_eq!(skip_rate(1.0 - 1e-6, Gating::Soft, pool_only), 0.0);
    }
}

#[test]
fn recall_scores_every_continuation_token_at_each_distance() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let model = untrained(tokenizer.vocab_size(), 2, true);
    let too_far = store.tokens.len();
    let rows = recall_vs_distance(&model, tokenizer, &store, &[16, 200, too_far], 3, 1).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.distance).collect::<Vec<_>>(),
        vec![16, 200, too_far]
    );
    for row in &rows[..2] {
        assert_eq!(row.trials, 3);
        // At least the quote's second half (12 tokens of text, maybe fewer once decoded and
        // re-encoded) and the answer's end per trial.
        assert!(row.tokens >= 2 * row.trials, "{row:?}");
        assert!(row.tokens_correct <= row.tokens && row.exact <= row.trials);
        // An untrained model does not complete twelve tokens of a quote.
        assert_eq!(row.exact, 0, "{row:?}");
    }
    assert_eq!(rows[2].trials, 0);
}

#[test]
fn a_ridge_probe_reads_back_a_linear_image_and_not_noise() {
    let mut rng = Rng::new(5);
    let mut normal = || {
        // Sum of uniforms: close enough to a Gaussian for this.
        (0..12).map(|_| rng.unit()).sum::<f64>() - 6.0
    };
    let x: Vec<Vec<f64>> = (0..300)
        .map(|_| (0..6).map(|_| normal()).collect())
        .collect();
    let mixed: Vec<Vec<f64>> = x
        .iter()
        .map(|v| {
            vec![
                v[0] + 2.0 * v[1] + 1.0,
                v[2] - v[3],
                0.5 * v[4] + v[5] - 3.0,
            ]
        })
        .collect();
    let noise: Vec<Vec<f64>> = (0..300)
        .map(|_| (0..3).map(|_| normal()).collect())
        .collect();
    let linear = probe_fidelity(&x, &mixed, 200).unwrap();
    let unrelated = probe_fidelity(&x, &noise, 200).unwrap();
    assert!(linear > 0.99, "{linear}");
    assert!(unrelated.abs() < 0.3, "{unrelated}");
}

#[test]
fn fidelity_has_one_point_per_layer_and_lag_and_one_per_pair_of_layers() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let model = untrained(tokenizer.vocab_size(), 4, true);
    let layers = quarter_layers(4);
    assert_eq!(layers, vec![0, 1, 2, 3, 4]);
    let f = fidelity(&model, &store, &fidelity_config(vec![0, 2, 4])).unwrap();
    assert_eq!((f.fit_rows, f.test_rows), (40, 12));
    let etmf: Vec<_> = f.etmf.iter().map(|p| (p.layer, p.lag)).collect();
    let want: Vec<_> = [0, 2, 4]
        .iter()
        .flat_map(|&l| [1, 4, 16].map(|k| (l, k)))
        .collect();
    assert_eq!(etmf, want);
    let eclmf: Vec<_> = f.eclmf.iter().map(|p| (p.layer, p.up)).collect();
    assert_eq!(eclmf, vec![(0, 2), (0, 4), (2, 2)]);
    for v in f
        .etmf
        .iter()
        .map(|p| p.fidelity)
        .chain(f.eclmf.iter().map(|p| p.fidelity))
    {
        assert!(v.is_finite() && (-1.0..=1.0).contains(&v), "{v}");
    }
}

#[test]
fn the_report_runs_every_measure_on_two_models_and_draws_valid_pngs() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let plan = EvalPlan {
        measures: Measure::ALL.to_vec(),
        contexts: vec![64, 128],
        windows: 1,
        scored: 8,
        passkey_lengths: vec![120, 200],
        depths: vec![0.0, 1.0],
        passkey_trials: vec![1],
        multikey_lengths: vec![150],
        keys: vec![2, 3],
        multikey_trials: 1,
        reading: Reading::default(),
        recall_distances: vec![8, 64],
        recall_trials: 1,
        fidelity: fidelity_config(Vec::new()),
        seed: 1,
    };
    let reports: Vec<_> = [("memmamba", true), ("baseline (notes off)", false)]
        .iter()
        .map(|&(label, notes)| {
            let model = untrained(tokenizer.vocab_size(), 2, notes);
            evaluate(label, &model, tokenizer, &store, &plan, |_| {}).unwrap()
        })
        .collect();
    assert!(reports[0].notes && !reports[1].notes);
    let text = markdown(&reports, &plan);
    for heading in [
        "## Perplexity vs context",
        "## Pass-key accuracy: memmamba",
        "## Multi-key accuracy: baseline (notes off)",
        "## Against a foil: memmamba",
        "## Against a foil: baseline (notes off)",
        "## Wrong at the first token: memmamba",
        "## The asked fact in the pools: memmamba",
        "## The answer's digits in the pools: memmamba",
        "## Recall of real text",
        "## ETMF (ours",
        "## ECLMF (ours",
        "| context | memmamba perplexity · bits per byte | baseline (notes off) perplexity · bits per byte |",
    ] {
        assert!(text.contains(heading), "{heading} missing from\n{text}");
    }
    assert!(!text.contains("## The asked fact in the pools: baseline"));
    assert!(!text.contains("## The answer's digits in the pools: baseline"));
    // Every table row has as many cells as its header.
    for table in text.split("\n\n").filter(|t| t.starts_with('|')) {
        let widths: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
    }

    let dir = std::env::temp_dir().join(format!("memmamba-eval-plots-{}", std::process::id()));
    let files = write_plots(&reports, &dir).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "results.json",
        "perplexity.png",
        "recall.png",
        "passkey-memmamba.png",
        "multikey-baseline-notes-off.png",
        "etmf-memmamba.png",
        "eclmf-baseline-notes-off.png",
    ] {
        assert!(names.contains(&name.to_string()), "{name} not in {names:?}");
    }
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let image = image::open(file).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (900, 600), "{}", file.display());
        // Not blank: dark pixels (text, axes) as well as white ones.
        let dark = image
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 80))
            .count();
        assert!(dark > 500, "{}: {dark} dark pixels", file.display());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
