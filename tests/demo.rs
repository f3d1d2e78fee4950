//! `memreader demo` end to end: with a (tiny, random) model it reads a prefix of each book and
//! answers the known questions; without one it says so once and still answers from BM25.

mod common;

use std::process::Command;

fn demo(model: &std::path::Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_memreader"))
        .args(["demo", "--device", "cpu", "--max-tokens", "1024"])
        .env("MEMREADER_MODEL", model)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn the_demo_reads_the_books_and_answers_its_questions_with_citations() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let (out, _) = demo(&model);
    assert!(
        out.contains("Reading the first 1024 tokens of each book"),
        "{out}"
    );
    assert_eq!(out.matches("1024/").count(), 2, "{out}");
    assert!(out.contains("Q: What is the pass key?"), "{out}");
    assert!(out.contains("68491"), "{out}");
    assert!(out.contains("[chars "), "{out}");
    assert!(
        out.contains("words held "),
        "each citation's words held are shown: {out}"
    );
    assert!(
        out.contains("4 of 4 answers hold the expected text."),
        "{out}"
    );
    assert!(!out.contains("Not there yet"), "{out}");
}

#[test]
fn without_the_model_the_demo_says_so_once_and_answers_from_bm25() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-model");
    let (out, err) = demo(&missing);
    assert_eq!(out.matches("The model is absent").count(), 1, "{out}");
    assert!(
        out.contains(&missing.join("config.json").display().to_string()),
        "{out}"
    );
    assert!(!err.contains("no model"), "{err}");
    assert!(
        out.contains("4 of 4 answers hold the expected text."),
        "{out}"
    );
    assert!(out.contains("Not there yet"), "{out}");
}
