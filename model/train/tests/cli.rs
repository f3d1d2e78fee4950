//! The `memmamba-train` command line: a run keeps the tokenizer it was trained with.

mod common;

use std::path::Path;
use std::process::Command;

use common::{demo_store, small_tokenizer};
use memmamba_train::tokenizer::BookTokenizer;

fn run(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_memmamba-train"))
        .args(args)
        .output()
        .expect("memmamba-train runs");
    assert!(
        out.status.success(),
        "memmamba-train {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    run(&[
        "train",
        "--tokens",
        path(&tokens),
        "--tokenizer",
        path(&tokenizer),
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
        path(&trained),
    ]);
    run(&["quantize", "--run", path(&trained), "--out", path(&shipped)]);
    for dir in [&trained, &shipped] {
        let kept = BookTokenizer::load(&dir.join("tokenizer.json")).unwrap();
        let key = " The pass key is 66796.";
        assert_eq!(kept.encode(key).unwrap(), digits.encode(key).unwrap());
    }
    // The run's own tokenizer is used: the one named by --tokenizer does not exist.
    let missing = tmp.path().join("no-such-tokenizer.json");
    run(&[
        "eval",
        "--run",
        path(&shipped),
        "--tokens",
        path(&tokens),
        "--tokenizer",
        path(&missing),
        "--measure",
        "passkey",
        "--passkey-lengths",
        "256",
        "--depths",
        "0.5",
        "--trials",
        "1",
        "--device",
        "cpu",
    ]);
}
