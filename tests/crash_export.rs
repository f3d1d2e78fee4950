//! Crash safety of snapshot export: `memreader snapshot export -o FILE`, where FILE holds a
//! good snapshot, SIGKILLed at seeded random points many times (half of them at a random time
//! in the run, half just after its temporary file appears, that is while the new snapshot is
//! being written, synced or renamed). After every kill FILE is either the old snapshot, byte
//! for byte, or a whole new one that imports; and the temporary files left by the kills do
//! not break a later export, which removes them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, cli_command, doc_id, kill_when, ok, Rng, Run};
use memreader::memory::{self, ReadOptions};
use memreader::snapshot;

/// Seed of the kill points; a failure prints it.
const SEED: u64 = 0x0e78_0a7e_5eed;
const KILLS: usize = 60;

fn export_command(lib: &Path, model: &Path, file: &Path) -> Command {
    let mut command = cli_command(lib, model, &["snapshot", "export", "-o"]);
    command
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The files in `dir` other than `keep`.
fn others(dir: &Path, keep: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != keep)
        .collect();
    found.sort();
    found
}

#[test]
fn an_export_killed_at_any_point_leaves_the_old_snapshot_or_a_whole_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = common::tiny_model(&tmp.path().join("model"));
    let model = common::load(&model_dir);
    let library = common::library(&tmp.path().join("reading"));
    let read = |part: &str| {
        let options = ReadOptions {
            max_tokens: Some(1024),
            ..ReadOptions::default()
        };
        let id = doc_id(&library, part);
        memory::read(&library, &model, &id, &options, &mut |_| {}).unwrap();
    };
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("session.memsnap");

    // The old snapshot holds one memory; every new one holds two.
    read("grimm");
    ok(cli(
        library.dir(),
        &model_dir,
        &["snapshot", "export", "-o", file.to_str().unwrap()],
    ));
    let old = std::fs::read(&file).unwrap();
    read("wilde");
    let checked = memreader::library::Library::open(&tmp.path().join("checked")).unwrap();
    let imports_whole = |what: &str| {
        let report = snapshot::import(&checked, &model, &file, None)
            .unwrap_or_else(|e| panic!("seed {SEED:#x}: after {what}, FILE is broken: {e}"));
        assert_eq!(report.documents.len(), 2, "seed {SEED:#x}: after {what}");
    };

    // How long an export takes, from start to exit: the window of the timed kills.
    let started = Instant::now();
    let status = export_command(
        library.dir(),
        &model_dir,
        &tmp.path().join("timing.memsnap"),
    )
    .status()
    .unwrap();
    assert!(status.success());
    let window = started.elapsed();

    let mut rng = Rng(SEED);
    let temporary = |p: &Path| p.file_name().unwrap().to_string_lossy().starts_with('.');
    let (mut kills, mut mid_write, mut kept, mut replaced, mut finished) = (0, 0, 0, 0, 0);
    let mut litter = 0;
    let mut run = 0;
    while kills < KILLS {
        run += 1;
        assert!(
            run <= 4 * KILLS,
            "seed {SEED:#x}: {kills} kills in {run} runs"
        );
        std::fs::write(&file, &old).unwrap();
        let left_before = others(&out, &file).len();
        let mut child = export_command(library.dir(), &model_dir, &file)
            .spawn()
            .unwrap();
        let start = Instant::now();
        let (ended, while_writing) = if run % 2 == 0 {
            let at = Duration::from_micros(rng.below(window.as_micros() as u64));
            (kill_when(&mut child, || start.elapsed() >= at), false)
        } else {
            // once a new temporary file is there, 0 to 3 ms more
            let mut at: Option<Instant> = None;
            let extra = Duration::from_micros(rng.below(3000));
            let ended = kill_when(&mut child, || match at {
                Some(at) => Instant::now() >= at,
                None => {
                    if others(&out, &file).iter().filter(|p| temporary(p)).count() > left_before {
                        at = Some(Instant::now() + extra);
                    }
                    false
                }
            });
            (ended, at.is_some())
        };
        match ended {
            Run::Killed => {
                kills += 1;
                mid_write += usize::from(while_writing);
                litter += usize::from(!others(&out, &file).is_empty());
                if std::fs::read(&file).unwrap() == old {
                    kept += 1;
                } else {
                    imports_whole(&format!("kill {kills} (run {run})"));
                    replaced += 1;
                }
            }
            Run::Finished(status) => {
                assert!(status.success(), "seed {SEED:#x}: run {run}: {status}");
                imports_whole(&format!("run {run}, which finished"));
                finished += 1;
            }
        }
    }
    println!(
        "{kills} kills ({mid_write} after the temporary file appeared): FILE kept the old \
         snapshot {kept} times, held a whole new one {replaced} times; {finished} runs \
         finished first; {litter} kills left a temporary file; an export takes {window:?}"
    );
    let left = others(&out, &file);
    assert!(
        left.iter().all(|p| temporary(p)),
        "seed {SEED:#x}: {left:?}"
    );
    assert!(
        mid_write >= KILLS / 4,
        "seed {SEED:#x}: only {mid_write} kills while the new snapshot was being written"
    );
    assert!(
        kept > 0 && replaced > 0,
        "seed {SEED:#x}: kills should fall before and after the rename"
    );

    // What the kills left does not break the next export, which removes it.
    ok(cli(
        library.dir(),
        &model_dir,
        &["snapshot", "export", "-o", file.to_str().unwrap()],
    ));
    imports_whole("a last export");
    let left = others(&out, &file);
    assert!(left.is_empty(), "seed {SEED:#x}: {left:?}");
}
