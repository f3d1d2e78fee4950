//! The `memmamba-train` command line: a run keeps the tokenizer it was trained with, and `eval`
//! reads a run with other pool sizes and without its recurrent state when asked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{demo_store, small_tokenizer};
use memmamba_train::tokenizer::BookTokenizer;

/// Runs `memmamba-train` with `args` to its end.
fn memmamba_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memmamba-train"))
        .args(args)
        .output()
        .expect("memmamba-train runs")
}

/// Runs `memmamba-train` with `args`, which must succeed; its standard output.
fn run(args: &[&str]) -> String {
    let out = memmamba_train(args);
    assert!(
        out.status.success(),
        "memmamba-train {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `memmamba-train` with `args`, expecting it to refuse them: its error output.
fn refused(args: &[&str]) -> String {
    let out = memmamba_train(args);
    assert!(
        !out.status.success(),
        "memmamba-train {args:?} was not refused"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Trains a `tiny` run for two steps on `tokens` with `tokenizer` into `out`, with `extra`
/// arguments.
fn train_tiny(tokens: &Path, tokenizer: &Path, out: &Path, extra: &[&str]) {
    run(&[
        &[
            "train",
            "--tokens",
            path(tokens),
            "--tokenizer",
            path(tokenizer),
            "--preset",
            "tiny",
            "--seq-len",
            "64",
            "--batch",
            "2",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--device",
            "cpu",
            "--out",
            path(out),
        ],
        extra,
    ]
    .concat());
}

/// `eval`'s arguments for one pass-key trial of 256 tokens.
const PASSKEY_ONCE: &[&str] = &[
    "--measure",
    "passkey",
    "--passkey-lengths",
    "256",
    "--depths",
    "0.5",
    "--trials",
    "1",
];

/// The small tokenizer and the demo books' tokens, written into `dir`: their paths.
fn demo_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let tokenizer = dir.join("tokenizer.json");
    small_tokenizer().save(&tokenizer).unwrap();
    let tokens = dir.join("demo.tokens");
    demo_store(small_tokenizer()).save(&tokens).unwrap();
    (tokenizer, tokens)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

#[test]
fn a_run_trains_quantizes_and_evaluates_with_its_own_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let digits = small_tokenizer().with_digits_split().unwrap();
    let tokenizer = tmp.path().join("digits.json");
    digits.save(&tokenizer).unwrap();
    let tokens = tmp.path().join("demo.tokens");
    demo_store(small_tokenizer()).save(&tokens).unwrap();
    let (trained, shipped) = (tmp.path().join("run"), tmp.path().join("model"));
    train_tiny(&tokens, &tokenizer, &trained, &[]);
    run(&["quantize", "--run", path(&trained), "--out", path(&shipped)]);
    for dir in [&trained, &shipped] {
        let kept = BookTokenizer::load(&dir.join("tokenizer.json")).unwrap();
        let key = " The pass key is 66796.";
        assert_eq!(kept.encode(key).unwrap(), digits.encode(key).unwrap());
    }
    // The run's own tokenizer is used: the one named by --tokenizer does not exist.
    let missing = tmp.path().join("no-such-tokenizer.json");
    run(&[
        &[
            "eval",
            "--run",
            path(&shipped),
            "--tokens",
            path(&tokens),
            "--tokenizer",
            path(&missing),
        ],
        PASSKEY_ONCE,
        &["--device", "cpu"],
    ]
    .concat());
}

#[test]
fn eval_reads_a_run_with_each_pool_size_asked_for_and_says_how_it_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (tokenizer, tokens) = demo_inputs(tmp.path());
    let trained = tmp.path().join("run");
    train_tiny(&tokens, &tokenizer, &trained, &[]);
    let report = run(&[
        &["eval", "--run", path(&trained), "--tokens", path(&tokens)],
        PASSKEY_ONCE,
        &[
            "--pool-slots",
            "2,16",
            "--pool-only",
            "--soft-gates",
            "--device",
            "cpu",
        ],
    ]
    .concat());
    for heading in [
        "Pass keys and multi-key facts read with soft (training's) gates, the recurrent state \
         zeroed before the question",
        "## Pass-key accuracy: run K 2 ",
        "## Pass-key accuracy: run K 16 ",
        "## The asked fact in the pools: run K 16 ",
    ] {
        assert!(report.contains(heading), "{heading} missing from\n{report}");
    }
    // Soft gates skip no read.
    assert!(
        report.contains("| 256 | ") && report.contains(" · 0% |"),
        "{report}"
    );
}

#[test]
fn a_run_started_from_weights_can_draw_its_read_path_afresh_and_keep_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (tokenizer, tokens) = demo_inputs(tmp.path());
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    train_tiny(&tokens, &tokenizer, &first, &[]);
    let weights = first.join("model.safetensors");
    // Steps at learning rate 0 leave the weights as they started.
    train_tiny(
        &tokens,
        &tokenizer,
        &second,
        &[
            "--init",
            path(&weights),
            "--fresh-read-path",
            "--lr",
            "0",
            "--min-lr",
            "0",
        ],
    );
    let load = |dir: &Path| {
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
    };
    let (before, after) = (load(&first), load(&second));
    let changed = |name: &str| {
        let diff = (&before[name] - &after[name]).unwrap().abs().unwrap();
        diff.max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0
    };
    for name in before.keys() {
        assert_eq!(changed(name), memmamba::block::reads_notes(name), "{name}");
    }
    // Without weights to start from there is nothing to keep: refused.
    let third = tmp.path().join("third");
    let message = refused(&[
        "train",
        "--tokens",
        path(&tokens),
        "--fresh-read-path",
        "--out",
        path(&third),
    ]);
    assert!(message.contains("--init"), "{message}");
}

#[test]
fn a_run_can_be_drawn_towards_a_teachers_predictions_and_logs_how_far_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let (tokenizer, tokens) = demo_inputs(tmp.path());
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    train_tiny(&tokens, &tokenizer, &first, &[]);
    let weights = first.join("model.safetensors");
    let taught = ["--init", path(&weights), "--teacher", path(&weights)];
    train_tiny(
        &tokens,
        &tokenizer,
        &second,
        &[&taught[..], &["--distill", "1"]].concat(),
    );
    // The first step starts from the teacher's own weights; the second from moved ones.
    let log = std::fs::read_to_string(second.join("log.jsonl")).unwrap();
    let divergence: Vec<f64> = log
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["divergence"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(
        divergence.len() == 2 && divergence[0] < 1e-7 && divergence[1] > 0.0,
        "{log}"
    );
    // A weight without a teacher, and a teacher that is not there, are refused.
    let out = tmp.path().join("refused");
    let refuse = |extra: &[&str], names: &str| {
        let message = refused(
            &[
                &[
                    "train",
                    "--tokens",
                    path(&tokens),
                    "--tokenizer",
                    path(&tokenizer),
                    "--preset",
                    "tiny",
                    "--steps",
                    "1",
                    "--device",
                    "cpu",
                    "--out",
                    path(&out),
                ],
                extra,
            ]
            .concat(),
        );
        assert!(message.contains(names), "{message}");
    };
    refuse(&["--distill", "1"], "--teacher");
    refuse(
        &["--distill", "1", "--teacher", "missing.safetensors"],
        "missing.safetensors",
    );
}

#[test]
fn the_device_scripts_rehearse_an_experiment_on_the_cpu_and_report_every_measure() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, work) = (tmp.path().join("data"), tmp.path().join("work"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    small_tokenizer()
        .save(&data.join("tokenizer.json"))
        .unwrap();
    let store = demo_store(small_tokenizer());
    // device-train.sh takes the training stream from WORK when it is there (else it unpacks
    // DATA/train.tokens.gz) and the rest from DATA.
    for tokens in [
        data.join("train.tokens"),
        data.join("dev.tokens"),
        work.join("train.tokens"),
    ] {
        store.save(&tokens).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/device-experiment.sh");
    let out = Command::new("bash")
        .arg(&script)
        // The variant's arguments are one word, as device-train.sh takes them.
        .args([
            path(&data),
            path(&data.join("dev.tokens")),
            "0.1",
            "t",
            "--preset tiny --forget 1.0",
        ])
        .env("WORK", &work)
        .env("BIN", env!("CARGO_BIN_EXE_memmamba-train"))
        .env("DEVICE", "cpu")
        .env("PHASES", "32x2x2 64x2x2")
        .env("NOTES_LENGTHS", "256")
        .env("GRID", "256")
        .env("GRID_TRIALS", "1")
        .env("PPL", "128")
        .env("TRIALS", "1")
        // The last phase is measured beside the first, in the same calls.
        .env("REFERENCE", work.join("t/phase-0"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = std::fs::read_to_string(work.join("status")).unwrap();
    assert!(
        status.contains("t phase 1 (64x2x2) attempt 1 ended with 0"),
        "{status}"
    );
    assert!(status.trim_end().ends_with("t report done"), "{status}");
    let report = std::fs::read_to_string(work.join("t/report.md")).unwrap();
    for heading in [
        "# t phase 0 (32x2x2): the pass key from the notes alone",
        "# t phase 1 (64x2x2): the pass key from the notes alone",
        "# t: pass keys as the app reads, beside ",
        "## Perplexity vs context",
        "## Multi-key accuracy",
    ] {
        assert!(report.contains(heading), "no {heading:?} in\n{report}");
    }
    // One table per phase, then the last phase's and the reference's grids and multi-key
    // tables, and one perplexity table with a column for each.
    assert_eq!(
        report.matches("## Pass-key accuracy").count(),
        4,
        "{report}"
    );
    assert_eq!(
        report.matches("## Multi-key accuracy").count(),
        2,
        "{report}"
    );
    let perplexity = &report[report.find("## Perplexity vs context").unwrap()..];
    let header = perplexity
        .lines()
        .find(|line| line.starts_with("| "))
        .unwrap();
    assert_eq!(header.matches("phase-").count(), 2, "{header}");
}
