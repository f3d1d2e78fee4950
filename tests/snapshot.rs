//! Session snapshots: a round trip across processes and libraries, and every kind of bad file
//! refused with a message that says what is wrong with it.

mod common;

use std::path::{Path, PathBuf};

use common::{cli, fails, ok};
use memreader::ask::Answer;

const QUESTION: &str = "Does Life imitate Art?";

/// Ingests the staged books into `lib` with the CLI.
fn ingest(lib: &Path, model: &Path, books: &[PathBuf]) {
    let mut args = vec!["ingest".to_owned()];
    args.extend(books.iter().map(|b| b.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(cli(lib, model, &args));
}

fn ask(lib: &Path, model: &Path) -> Answer {
    serde_json::from_str(&ok(cli(lib, model, &["ask", QUESTION, "--json"]))).unwrap()
}

/// A library that has read both books (a prefix of each) and asked [`QUESTION`], and its
/// snapshot.
struct Exported {
    _tmp: tempfile::TempDir,
    books: Vec<PathBuf>,
    model: PathBuf,
    file: PathBuf,
    answer: Answer,
}

fn exported(tokens: &str) -> Exported {
    let tmp = tempfile::tempdir().unwrap();
    let books = common::books(&tmp.path().join("books"));
    let model = common::tiny_model(&tmp.path().join("model"));
    let lib = tmp.path().join("library");
    ingest(&lib, &model, &books);
    ok(cli(&lib, &model, &["read", "--max-tokens", tokens]));
    let answer = ask(&lib, &model);
    let file = tmp.path().join("session.memsnap");
    let out = ok(cli(
        &lib,
        &model,
        &["snapshot", "export", "-o", &file.display().to_string()],
    ));
    assert!(out.contains("2 document(s), 1 question(s)"), "{out}");
    Exported {
        _tmp: tmp,
        books,
        model,
        file,
        answer,
    }
}

#[test]
fn a_snapshot_imported_into_another_library_gives_the_same_answer() {
    let ex = exported("2048");
    // another library, in other processes: the same books ingested, nothing read
    let other = tempfile::tempdir().unwrap();
    let lib = other.path().join("library");
    ingest(&lib, &ex.model, &ex.books);
    let docs: serde_json::Value =
        serde_json::from_str(&ok(cli(&lib, &ex.model, &["list", "--json"]))).unwrap();
    let id = docs[0]["id"].as_str().unwrap().to_owned();
    let err = fails(cli(&lib, &ex.model, &["notes", &id]));
    assert!(err.contains("has not been read into memory yet"), "{err}");
    let out = ok(cli(
        &lib,
        &ex.model,
        &["snapshot", "import", &ex.file.display().to_string()],
    ));
    assert!(out.contains("2 document(s), 1 question(s)"), "{out}");
    assert!(!out.contains("not in this library"), "{out}");
    let answer = ask(&lib, &ex.model);
    assert_eq!(answer, ex.answer);
    // the memories took part on both sides: no document was ranked without its memory
    assert!(
        answer.notices.iter().all(|n| !n.contains("no memory")),
        "{answer:#?}"
    );
    // the history came along: the exported question, then the one just asked
    let history: Vec<memreader::session::HistoryEntry> =
        serde_json::from_str(&ok(cli(&lib, &ex.model, &["history", "--json"]))).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].answer, ex.answer);
    let out = ok(cli(&lib, &ex.model, &["notes", &id]));
    assert!(out.contains("2048 of "), "{out}");

    // a library without the books keeps the memories and says what is missing
    let bare = other.path().join("bare");
    let out = ok(cli(
        &bare,
        &ex.model,
        &["snapshot", "import", &ex.file.display().to_string()],
    ));
    assert!(out.contains("not in this library"), "{out}");
}

#[test]
fn the_snapshot_size_does_not_depend_on_how_much_was_read() {
    let short = exported("1024");
    let long = exported("8192");
    let a = std::fs::metadata(&short.file).unwrap().len();
    let b = std::fs::metadata(&long.file).unwrap().len();
    // only the history's answer and a few numbers differ
    assert!(a.abs_diff(b) < 4096, "{a} vs {b}");
}

/// Imports `bytes` as a snapshot into a fresh library with `model`; returns the error message.
fn refused(model: &Path, bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.memsnap");
    std::fs::write(&file, bytes).unwrap();
    let lib = tmp.path().join("library");
    let err = fails(cli(
        &lib,
        model,
        &["snapshot", "import", &file.display().to_string()],
    ));
    assert!(err.contains(&file.display().to_string()), "{err}");
    // nothing was written
    assert!(
        !lib.join("memories").exists()
            || std::fs::read_dir(lib.join("memories"))
                .unwrap()
                .next()
                .is_none()
    );
    err
}

/// Rewrites the checksum at the end after a change, so that only the change is wrong.
fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - 32;
    let sum = blake3::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(sum.as_bytes());
}

#[test]
fn bad_snapshots_are_refused_with_what_is_wrong() {
    let ex = exported("1024");
    let good = std::fs::read(&ex.file).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let err = refused(&ex.model, &flipped);
    assert!(err.contains("damaged") && err.contains("checksum"), "{err}");

    let err = refused(&ex.model, &good[..good.len() * 2 / 3]);
    assert!(err.contains("truncated"), "{err}");
    assert!(
        err.contains(&format!("of its {} bytes", good.len())),
        "{err}"
    );
    let err = refused(&ex.model, &good[..20]);
    assert!(err.contains("truncated"), "{err}");

    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = refused(&ex.model, &newer);
    assert!(
        err.contains("newer MemReader") && err.contains("version 2"),
        "{err}"
    );

    let err = refused(&ex.model, b"%PDF-1.7 not a snapshot at all");
    assert!(err.contains("not a MemReader snapshot"), "{err}");

    // a state whose shapes do not match the model, with a valid checksum
    let mut lied = good.clone();
    let manifest_len = u64::from_le_bytes(lied[24..32].try_into().unwrap()) as usize;
    let state_at = 32 + manifest_len + 8; // inside the first state's safetensors header
    lied[state_at] ^= 0x01;
    reseal(&mut lied);
    let err = refused(&ex.model, &lied);
    assert!(
        err.contains("damaged") && err.contains("memory of"),
        "{err}"
    );

    // a manifest that puts a memory outside the file, with a valid checksum
    let manifest = std::str::from_utf8(&good[32..32 + manifest_len]).unwrap();
    let offset_field = "\"offset\":0,";
    assert!(manifest.contains(offset_field), "{manifest}");
    let far = manifest.replacen(offset_field, "\"offset\":9,", 1);
    let mut moved = good.clone();
    moved[32..32 + manifest_len].copy_from_slice(far.as_bytes());
    reseal(&mut moved);
    let err = refused(&ex.model, &moved);
    assert!(err.contains("damaged"), "{err}");

    // a session name that is not one, with a valid checksum: the file is named
    let named = with_manifest(&good, |m| m["session"] = "../x".into());
    let err = refused(&ex.model, &named);
    assert!(
        err.contains("damaged") && err.contains("session name \"../x\""),
        "{err}"
    );

    // another model with the same configuration but other weights
    let other = tempfile::tempdir().unwrap();
    let other_model = common::other_tiny_model(other.path());
    let err = refused(&other_model, &good);
    assert!(err.contains("different model weights"), "{err}");

    // and the good one imports
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("good.memsnap");
    std::fs::write(&file, &good).unwrap();
    ok(cli(
        &tmp.path().join("library"),
        &ex.model,
        &["snapshot", "import", &file.display().to_string()],
    ));
}

/// `good` with its manifest edited by `edit` (the container rebuilt around it: lengths and
/// checksum recomputed, the states unchanged; the rebuilt unedited one imports), so that only the edit is wrong.
fn with_manifest(good: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let manifest_len = u64::from_le_bytes(good[24..32].try_into().unwrap()) as usize;
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&good[32..32 + manifest_len]).unwrap();
    edit(&mut manifest);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let states = &good[32 + manifest_len..good.len() - 32];
    memreader::snapshot::container(&manifest, states)
}

/// Each memory in a snapshot is checked, hashed and written once: a manifest that lists one
/// state many times (under one id or several) would make a small file cost import work and
/// library writes many times its size, so it is refused.
#[test]
fn a_manifest_that_lists_one_memory_twice_is_refused() {
    let ex = exported("1024");
    let good = std::fs::read(&ex.file).unwrap();
    // rebuilt unchanged, it imports
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rebuilt.memsnap");
    std::fs::write(&file, with_manifest(&good, |_| {})).unwrap();
    ok(cli(
        &tmp.path().join("library"),
        &ex.model,
        &["snapshot", "import", &file.display().to_string()],
    ));

    let twice = with_manifest(&good, |m| {
        let first = m["documents"][0].clone();
        m["documents"][1] = first;
    });
    let err = refused(&ex.model, &twice);
    assert!(
        err.contains("damaged") && err.contains("listed twice"),
        "{err}"
    );

    let shared = with_manifest(&good, |m| {
        for field in ["offset", "length", "blake3", "tokens_read"] {
            m["documents"][1][field] = m["documents"][0][field].clone();
        }
    });
    let err = refused(&ex.model, &shared);
    assert!(err.contains("damaged") && err.contains("overlap"), "{err}");

    let upper = with_manifest(&good, |m| {
        let id = m["documents"][0]["id"].as_str().unwrap().to_uppercase();
        m["documents"][0]["id"] = id.into();
    });
    let err = refused(&ex.model, &upper);
    assert!(err.contains("is not a document id"), "{err}");
}

#[test]
fn exporting_a_session_without_memories_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(&tmp.path().join("model"));
    let lib = tmp.path().join("library");
    let file = tmp.path().join("s.memsnap");
    let file_arg = file.display().to_string();
    let export = |session: &str| {
        fails(cli(
            &lib,
            &model,
            &["snapshot", "export", "--session", session, "-o", &file_arg],
        ))
    };
    let err = export("empty");
    assert!(err.contains("has no documents read into memory"), "{err}");
    let err = export("../x");
    assert!(err.contains("invalid session name"), "{err}");
    assert!(!file.exists());
}
