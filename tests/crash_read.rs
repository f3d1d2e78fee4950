//! Crash safety of reading: `memreader read` SIGKILLed at random points, many times, then run
//! to the end, leaves exactly the memory that one uninterrupted reading leaves (byte for byte),
//! and a snapshot exported after it imports again.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, cli_command, doc_id, kill_when, ok, Rng, Run};

/// Seed of the kill times; a failure prints it.
const SEED: u64 = 0x5eed_4ead;
const KILLS: usize = 12;
const TOKENS: &str = "131072";
const CHECKPOINT: &str = "4096";

/// `memreader read` of the Grimm book's first [`TOKENS`] tokens, saving every [`CHECKPOINT`].
fn read_command(lib: &Path, model: &Path, id: &str) -> Command {
    cli_command(
        lib,
        model,
        &[
            "read",
            id,
            "--max-tokens",
            TOKENS,
            "--checkpoint-tokens",
            CHECKPOINT,
        ],
    )
}

#[test]
fn a_reading_killed_many_times_ends_with_the_memory_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(&tmp.path().join("model"));
    let reference = common::library(&tmp.path().join("reference"));
    let killed = common::library(&tmp.path().join("killed"));
    let id = doc_id(&reference, "grimm");
    assert_eq!(
        doc_id(&killed, "grimm"),
        id,
        "the same book has the same id"
    );

    let status = read_command(reference.dir(), &model, &id)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let expected = std::fs::read(memreader::memory::state_path(&reference, &id)).unwrap();

    let mut rng = Rng(SEED);
    let mut kills = 0;
    for _ in 0..KILLS {
        let at = Duration::from_millis(100 + rng.below(400));
        let mut child = read_command(killed.dir(), &model, &id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        match kill_when(&mut child, || start.elapsed() >= at) {
            Run::Killed => kills += 1,
            Run::Finished(_) => break, // nothing left to interrupt
        }
    }
    assert!(
        kills > 0,
        "seed {SEED:#x}: every run finished before its kill"
    );
    let status = read_command(killed.dir(), &model, &id)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "seed {SEED:#x}");
    let found = std::fs::read(memreader::memory::state_path(&killed, &id)).unwrap();
    assert!(
        found == expected,
        "seed {SEED:#x}: after {kills} kills the memory differs from an uninterrupted reading"
    );
    println!("{kills} kills survived");

    // The memory is usable: exported with the session and imported into a fresh library.
    let file = tmp.path().join("session.memrsnap");
    ok(cli(
        killed.dir(),
        &model,
        &["snapshot", "export", "-o", file.to_str().unwrap()],
    ));
    let fresh = tmp.path().join("fresh");
    ok(cli(
        &fresh,
        &model,
        &["snapshot", "import", file.to_str().unwrap()],
    ));
}
