//! Crash safety of bulk ingestion: `memreader ingest` over a generated library of a few hundred
//! small files (text, Markdown, HTML, EPUB, PDF, duplicates and broken files) is killed with
//! SIGKILL at seeded random points, many times, and started again each time (its files
//! arrive in batches, each after a run that finished); a last run completes. Then the catalog
//! and the index must agree: every good file is one ready document, every broken one one
//! failed record, nothing is left half-indexed, and the index holds exactly each ready
//! document's passages (no duplicates, none missing, no orphans).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kill_when, Rng, Run};
use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use ingest::index::Index;
use ingest::{DocumentRecord, IngestReport, Library, SearchOptions, Status};

/// The seed of the kill times; the test prints it with every failure.
const SEED: u64 = 0x6d65_6d72_6561_6472;
const KILLS: usize = 40;
/// Kills after the last batch arrived, at least.
const LAST_BATCH_KILLS: usize = 10;
const TEXT_FILES: usize = 200;
/// The library's files arrive in this many batches.
const BATCHES: usize = 4;

/// A word in every sentence of every file.
const EVERYWHERE: &str = "lantern";

/// A query that finds every passage in the index: [`EVERYWHERE`], or the author's name that
/// the EPUBs' title pages (a passage of their own) show.
const EVERY_PASSAGE: &str = "lantern author";

/// The unique word of file `n`: letters only, so that no tokenizer splits it, ending in `x`,
/// so that the stemmer leaves it whole.
fn marker(n: usize) -> String {
    let letters: String = format!("{n:04}")
        .bytes()
        .map(|d| char::from(b'a' + (d - b'0')))
        .collect();
    format!("zq{letters}x")
}

/// Prose of `sentences` sentences, each with [`EVERYWHERE`] and the file's marker.
fn prose(n: usize, sentences: usize) -> String {
    let marker = marker(n);
    (0..sentences)
        .map(|i| {
            format!(
                "The {EVERYWHERE} number {i} of {marker} swung over the harbour wall while \
                 keepers counted ships and gulls in the evening."
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the library folder holds, by file name: the marker of each good file (`None` for a
/// duplicate of another file's content) and the names of the broken files.
struct Generated {
    good: BTreeMap<String, Option<String>>,
    broken: BTreeSet<String>,
}

fn generate(dir: &Path, rng: &mut Rng) -> Generated {
    let mut good = BTreeMap::new();
    let mut put = |name: String, bytes: Vec<u8>, marker: Option<String>| {
        std::fs::write(dir.join(&name), bytes).unwrap();
        good.insert(name, marker);
    };
    for n in 0..TEXT_FILES {
        // 1 to 3 passages each.
        let sentences = 2 + rng.below(40) as usize;
        let name = match n % 4 {
            0 => format!("{n:04}.md"),
            1 => format!("{n:04}.html"),
            _ => format!("{n:04}.txt"),
        };
        let body = match n % 4 {
            0 => format!("# Book {n}\n\n{}\n", prose(n, sentences)),
            1 => format!(
                "<!DOCTYPE html><html><head><title>Page {n}</title></head><body><p>{}</p></body></html>",
                prose(n, sentences)
            ),
            _ => prose(n, sentences),
        };
        put(name, body.into_bytes(), Some(marker(n)));
    }
    for n in TEXT_FILES..TEXT_FILES + 30 {
        let chapter = prose(n, 12);
        let bytes = fixtures::epub(
            if n % 2 == 0 {
                EpubVersion::Two
            } else {
                EpubVersion::Three
            },
            &format!("Book {n}"),
            "Author",
            &[("One", &chapter)],
            EpubFlaws::default(),
        );
        put(format!("{n:04}.epub"), bytes, Some(marker(n)));
    }
    for n in TEXT_FILES + 30..TEXT_FILES + 40 {
        let page = prose(n, 4);
        put(
            format!("{n:04}.pdf"),
            fixtures::pdf(&[&page]),
            Some(marker(n)),
        );
    }
    // Copies of earlier files: the same documents.
    for n in [2, 3, 6] {
        let bytes = std::fs::read(dir.join(format!("{n:04}.txt"))).unwrap();
        put(format!("copy-of-{n:04}.txt"), bytes, None);
    }
    let mut broken = BTreeSet::new();
    for (name, bytes) in [
        ("broken-binary.txt", vec![0u8; 300]),
        ("broken-image.pdf", fixtures::png()),
        (
            "broken-encrypted.pdf",
            fixtures::encrypted_pdf(&["Locked."], "pw"),
        ),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
        broken.insert(name.to_owned());
    }
    Generated { good, broken }
}

fn ingest_command(library: &Path, files: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memreader"));
    command
        .arg("--library")
        .arg(library)
        .args(["ingest", "--jobs", "2", "--json"])
        .arg(files)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[test]
fn sigkilled_ingestion_restarts_and_leaves_catalog_and_index_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = dir.path().join("files");
    let library = dir.path().join("library");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    let mut rng = Rng(SEED);
    let generated = generate(&staging, &mut rng);
    // The files arrive in batches: each run that finishes before its kill brings the next
    // one, so that later kills still fall into runs with work to do.
    let mut names: Vec<String> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let move_batch = |k: usize| {
        for name in names.iter().skip(k).step_by(BATCHES) {
            std::fs::rename(staging.join(name), files.join(name)).unwrap();
        }
    };
    move_batch(0);
    let started = Instant::now();

    // Kill times are drawn from 0 to `window`, which follows the length of the last run that
    // ingested something without being killed.
    let mut window = Duration::from_millis(500);
    let (mut kills, mut finished, mut batches, mut last_batch_kills) = (0, 0, 1, 0);
    while kills < KILLS || batches < BATCHES || last_batch_kills < LAST_BATCH_KILLS {
        let delay = Duration::from_millis(rng.below(window.as_millis() as u64));
        let run_start = Instant::now();
        let mut child = ingest_command(&library, &files)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        match kill_when(&mut child, || run_start.elapsed() >= delay) {
            Run::Finished(_) => {
                let out = child.wait_with_output().unwrap();
                // A run that finished: 2 says some files failed (the broken ones).
                assert_eq!(out.status.code(), Some(2), "seed {SEED:#x}: {}", out.status);
                let report: IngestReport = serde_json::from_slice(&out.stdout).unwrap();
                if !report.ingested.is_empty() {
                    window = run_start.elapsed().mul_f64(1.2);
                }
                finished += 1;
                if batches < BATCHES {
                    move_batch(batches);
                    batches += 1;
                }
            }
            Run::Killed => {
                kills += 1;
                if batches == BATCHES {
                    last_batch_kills += 1;
                }
            }
        }
    }

    let out = ingest_command(&library, &files)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "seed {SEED:#x}");
    let report: IngestReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report.cancelled);
    let total = generated.good.len() + generated.broken.len();
    assert_eq!(
        report.ingested.len() + report.skipped.len() + report.failed.len(),
        total,
        "seed {SEED:#x}: {report:#?}"
    );
    let failed: BTreeSet<String> = report
        .failed
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(failed, generated.broken, "seed {SEED:#x}");
    eprintln!(
        "{kills} kills, {finished} runs finished before their kill, last run: {} ingested, \
         {} skipped, {} recovered; {:?} in all",
        report.ingested.len(),
        report.skipped.len(),
        report.recovered,
        started.elapsed()
    );

    check_consistency(&library, &generated);
}

fn check_consistency(library_dir: &Path, generated: &Generated) {
    // The catalog, as `memreader list --json` shows it.
    let out = Command::new(env!("CARGO_BIN_EXE_memreader"))
        .arg("--library")
        .arg(library_dir)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let records: Vec<DocumentRecord> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "duplicate ids in the catalog");
    let name_of = |r: &DocumentRecord| r.path.file_name().unwrap().to_string_lossy().into_owned();
    let ready: Vec<&DocumentRecord> = records
        .iter()
        .filter(|r| r.status == Status::Ready)
        .collect();
    let failed: BTreeSet<String> = records
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(name_of)
        .collect();
    assert!(
        records.iter().all(|r| r.status != Status::Indexing),
        "documents left half-indexed"
    );
    assert_eq!(failed, generated.broken);
    // One ready document per distinct content: the copies are the same documents.
    let distinct = generated.good.values().filter(|m| m.is_some()).count();
    assert_eq!(ready.len(), distinct, "ready documents");

    // The index: every passage of every ready document once, and nothing else.
    let index = Index::open(&library_dir.join("index")).unwrap();
    // Every passage, of every document, ready or not.
    let hits = index
        .search(EVERY_PASSAGE, &[], 1_000_000, &mut |_| Some(String::new()))
        .unwrap();
    let mut per_doc: HashMap<&str, u64> = HashMap::new();
    let mut passage_ids = BTreeSet::new();
    for hit in &hits {
        assert!(
            passage_ids.insert(hit.passage_id.as_str()),
            "passage {} is in the index twice",
            hit.passage_id
        );
        *per_doc.entry(hit.doc_id.as_str()).or_default() += 1;
    }
    for doc_id in per_doc.keys() {
        assert!(
            ready.iter().any(|r| r.id == *doc_id),
            "orphan passages of {doc_id}, which is not a ready document"
        );
    }
    for record in &ready {
        let passages = record.passages;
        assert!(passages > 0, "{} has no passages", name_of(record));
        assert_eq!(
            per_doc.get(record.id.as_str()),
            Some(&passages),
            "{}",
            name_of(record)
        );
        assert_eq!(index.count(&record.id).unwrap(), passages);
    }

    // Every good file is found by its own word, in its own document.
    let library = Library::open(library_dir).unwrap();
    let mut found: BTreeSet<String> = BTreeSet::new();
    for marker in generated.good.values().flatten() {
        let hits = library.search(marker, &SearchOptions::default()).unwrap();
        let docs: BTreeSet<&str> = hits.iter().map(|h| h.doc_id.as_str()).collect();
        assert_eq!(docs.len(), 1, "{marker}: {hits:?}");
        found.extend(docs.into_iter().map(str::to_owned));
    }
    assert_eq!(found.len(), ready.len());
    assert!(ready.iter().all(|r| r.path.exists()));
}
