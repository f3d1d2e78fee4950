//! Load: searches and asks from several threads against one library while a bulk ingestion runs
//! in it and another thread reads its books into memory again and again (so that asks follow
//! the memories' pointers while they are rewritten). None may fail, the books already there
//! must stay findable throughout, and the latencies are printed (`cargo test --test load --
//! --nocapture`).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::KNOWN;
use memreader::ask::{self, AskOptions};
use memreader::library::{PdfIsolation, SearchOptions};
use memreader::memory::{self, ReadOptions};

const SEARCHERS: usize = 3;
const ASKERS: usize = 2;
const NEW_FILES: usize = 600;

/// A generated book chapter: ordinary prose plus a word found in this file only.
fn chapter(i: usize) -> String {
    let mut text = format!("CHAPTER {i}\n\nThe keeper of file {i} wrote the word zq{i}marker.\n\n");
    for s in 0..60 {
        text.push_str(&format!(
            "Sentence {s} of chapter {i} tells of the river, the mill and the long road home. "
        ));
    }
    text
}

/// Milliseconds at quantile `q` of `times` (sorted in place).
fn quantile(times: &mut [Duration], q: f64) -> f64 {
    times.sort();
    let at = ((times.len() as f64 - 1.0) * q).round() as usize;
    times[at].as_secs_f64() * 1e3
}

#[test]
fn searches_and_asks_keep_answering_while_a_bulk_ingestion_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let library = Arc::new(common::library(tmp.path()));
    let model = Arc::new(common::load(&common::tiny_model(&tmp.path().join("model"))));
    let incoming = tmp.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    for i in 0..NEW_FILES {
        std::fs::write(incoming.join(format!("chapter-{i:03}.txt")), chapter(i)).unwrap();
    }

    let done = Arc::new(AtomicBool::new(false));
    let ingestion = {
        let (library, done) = (library.clone(), done.clone());
        std::thread::spawn(move || {
            let options = ingest::IngestOptions::new(PdfIsolation::InProcess);
            let report = library.ingest(&[incoming], &options, &mut |_| {});
            done.store(true, Ordering::SeqCst);
            report
        })
    };
    let searchers: Vec<_> = (0..SEARCHERS)
        .map(|t| {
            let (library, done) = (library.clone(), done.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                while !done.load(Ordering::SeqCst) || times.is_empty() {
                    let query = [
                        "white whale river",
                        "grandmother cakes wine",
                        "Life imitates Art",
                    ][(t + times.len()) % 3];
                    let start = Instant::now();
                    let hits = library.search(query, &SearchOptions::default()).unwrap();
                    times.push(start.elapsed());
                    if query == "Life imitates Art" {
                        assert!(hits.iter().any(|h| h.title.contains("intentions")));
                    }
                }
                times
            })
        })
        .collect();
    let reader = {
        let (library, model, done) = (library.clone(), model.clone(), done.clone());
        let books = [
            common::doc_id(&library, "grimm"),
            common::doc_id(&library, "wilde"),
        ];
        std::thread::spawn(move || {
            let mut times = Vec::new();
            while !done.load(Ordering::SeqCst) || times.is_empty() {
                // From the start each time, a different length, its state saved every 512 tokens.
                let options = ReadOptions {
                    max_tokens: Some(1024 * (2 + times.len() as u64 % 3)),
                    checkpoint_tokens: 512,
                    restart: true,
                    ..ReadOptions::default()
                };
                let id = &books[times.len() % 2];
                let start = Instant::now();
                memory::read(&library, &model, id, &options, &mut |_| {}).unwrap();
                times.push(start.elapsed());
            }
            times
        })
    };
    let askers: Vec<_> = (0..ASKERS)
        .map(|t| {
            let (library, model, done) = (library.clone(), model.clone(), done.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                while !done.load(Ordering::SeqCst) || times.is_empty() {
                    let (question, expected, _) = KNOWN[(t + times.len()) % KNOWN.len()];
                    let start = Instant::now();
                    let answer =
                        ask::ask(&library, Some(&model), question, &AskOptions::default()).unwrap();
                    times.push(start.elapsed());
                    assert!(
                        answer.citations.iter().any(|c| c.quote.contains(expected)),
                        "{question}: {answer:?}"
                    );
                }
                times
            })
        })
        .collect();

    let report = ingestion.join().unwrap().unwrap();
    assert_eq!(report.ingested.len(), NEW_FILES, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    let mut searches: Vec<Duration> = searchers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let mut asks: Vec<Duration> = askers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut reads = reader.join().unwrap();
    println!("| during ingestion of {NEW_FILES} files | count | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (what, times) in [
        ("search", &mut searches),
        ("ask", &mut asks),
        ("read 2k-4k tokens", &mut reads),
    ] {
        println!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} |",
            times.len(),
            quantile(times, 0.5),
            quantile(times, 0.99),
            quantile(times, 1.0)
        );
    }
    // Everything ingested meanwhile is searchable at the end.
    for i in [0, NEW_FILES / 2, NEW_FILES - 1] {
        let hits = library
            .search(&format!("zq{i}marker"), &SearchOptions::default())
            .unwrap();
        assert_eq!(hits.len(), 1, "file {i}: {hits:?}");
    }
}
