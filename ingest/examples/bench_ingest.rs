//! Ingestion benchmark: parse throughput per format (in process, one thread), then a whole
//! library ingestion of the same files, then `pdftotext` on the same PDFs if it is installed.
//!
//!     [MEMREADER_BIN=target/debug/memreader] cargo run -p ingest --example bench_ingest [-- SCALE]
//!
//! The inputs are generated (`ingest::fixtures`) from English-like text, plus the bundled demo
//! books as real plain text. SCALE (default 1) multiplies the number of files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use ingest::{parse, sniff, split_passages, IngestOptions, Library, PdfIsolation, PdfWorker};

const WORDS: [&str; 24] = [
    "river", "lantern", "harbour", "orchard", "winter", "letter", "garden", "stone", "candle",
    "meadow", "window", "silver", "morning", "forest", "engine", "ledger", "captain", "valley",
    "bridge", "market", "thunder", "paper", "violin", "island",
];

/// `sentences` pseudo-English sentences, deterministic in `seed`.
fn prose(seed: usize, sentences: usize) -> String {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        WORDS[state % WORDS.len()]
    };
    (0..sentences)
        .map(|_| {
            format!(
                "The {} saw the {} near the {} and the {}.",
                next(),
                next(),
                next(),
                next()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Row {
    format: &'static str,
    files: usize,
    bytes: u64,
    pages: usize,
    words: usize,
    seconds: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scale: usize = std::env::args().nth(1).map_or(Ok(1), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let corpus = dir.path().join("corpus");
    let mut files: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut write = |format: &'static str, name: String, bytes: Vec<u8>| -> std::io::Result<()> {
        let path = corpus.join(format).join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(&corpus))?;
        std::fs::write(&path, bytes)?;
        files.push((format, path));
        Ok(())
    };
    for i in 0..20 * scale {
        // 20 pages of about 350 words each.
        let pages: Vec<String> = (0..20).map(|p| prose(i * 100 + p, 50)).collect();
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        write("pdf", format!("doc{i}.pdf"), fixtures::pdf(&refs))?;
        let chapters: Vec<(String, String)> = (0..20)
            .map(|c| (format!("Chapter {c}"), prose(i * 100 + c, 50)))
            .collect();
        let chapter_refs: Vec<(&str, &str)> = chapters
            .iter()
            .map(|(t, b)| (t.as_str(), b.as_str()))
            .collect();
        let version = if i % 2 == 0 {
            EpubVersion::Two
        } else {
            EpubVersion::Three
        };
        write(
            "epub",
            format!("book{i}.epub"),
            fixtures::epub(
                version,
                "Bench",
                "Author",
                &chapter_refs,
                EpubFlaws::default(),
            ),
        )?;
        let html: String = chapters
            .iter()
            .map(|(t, b)| format!("<h2>{t}</h2><p>{b}</p>\n"))
            .collect();
        write(
            "html",
            format!("page{i}.html"),
            format!(
                "<!DOCTYPE html><html><head><title>Bench</title></head><body>{html}</body></html>"
            )
            .into_bytes(),
        )?;
        let md: String = chapters
            .iter()
            .map(|(t, b)| format!("## {t}\n\n{b}\n\n"))
            .collect();
        write(
            "markdown",
            format!("notes{i}.md"),
            format!("# Bench\n\n{md}").into_bytes(),
        )?;
    }
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo");
    for entry in std::fs::read_dir(&demo)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "txt") {
            for copy in 0..scale {
                let name = format!(
                    "{copy}-{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
                write("text", name, std::fs::read(&path)?)?;
            }
        }
    }

    println!("Parsing in process, one thread (sniff + parse + passages):\n");
    println!("| format | files | MB | pages | words | seconds | pages/s | MB/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut total_bytes = 0;
    for format in ["pdf", "epub", "html", "markdown", "text"] {
        let mut row = Row {
            format,
            files: 0,
            bytes: 0,
            pages: 0,
            words: 0,
            seconds: 0.0,
        };
        for (_, path) in files.iter().filter(|(f, _)| *f == format) {
            let bytes = std::fs::read(path)?;
            let started = Instant::now();
            let doc = parse(sniff(&bytes, path)?, &bytes)?;
            let passages = split_passages(&doc, "bench");
            row.seconds += started.elapsed().as_secs_f64();
            row.files += 1;
            row.bytes += bytes.len() as u64;
            row.pages += doc.pages.len();
            row.words += doc.text.split_whitespace().count();
            assert!(!passages.is_empty());
        }
        total_bytes += row.bytes;
        let pages_per_s = if row.pages > 0 {
            format!("{:.0}", row.pages as f64 / row.seconds)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {:.1} | {} | {} | {:.2} | {} | {:.1} |",
            row.format,
            row.files,
            row.bytes as f64 / 1e6,
            if row.pages > 0 {
                row.pages.to_string()
            } else {
                "-".into()
            },
            row.words,
            row.seconds,
            pages_per_s,
            row.bytes as f64 / 1e6 / row.seconds
        );
    }

    let library = Library::open(&dir.path().join("library"))?;
    let started = Instant::now();
    let report = library.ingest(
        std::slice::from_ref(&corpus),
        &IngestOptions::new(PdfIsolation::InProcess),
        &mut |_| {},
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nWhole library ingestion ({threads} threads: parse, passages, tantivy index, catalog, \
         commit): {} files, {:.1} MB in {seconds:.2} s = {:.1} files/s, {:.1} MB/s; {} failed.",
        report.ingested.len(),
        total_bytes as f64 / 1e6,
        report.ingested.len() as f64 / seconds,
        total_bytes as f64 / 1e6 / seconds,
        report.failed.len()
    );

    match std::env::var_os("MEMREADER_BIN") {
        Some(bin) => {
            let worker = PdfWorker::new(bin.into(), vec!["__extract-pdf".into()]);
            let library = Library::open(&dir.path().join("library-workers"))?;
            let started = Instant::now();
            let report = library.ingest(
                &[corpus.join("pdf")],
                &IngestOptions::new(PdfIsolation::Worker(worker)),
                &mut |_| {},
            )?;
            let seconds = started.elapsed().as_secs_f64();
            let pages: usize = report.ingested.iter().map(|d| d.pages).sum();
            println!(
                "\nPDFs through worker processes (memreader __extract-pdf, {threads} threads, \
                 indexed): {} files, {pages} pages in {seconds:.2} s = {:.0} pages/s; {} failed.",
                report.ingested.len(),
                pages as f64 / seconds,
                report.failed.len()
            );
        }
        None => println!(
            "\nSet MEMREADER_BIN to a memreader binary to time PDFs in worker processes too."
        ),
    }

    let pdfs: Vec<&PathBuf> = files
        .iter()
        .filter(|(f, _)| *f == "pdf")
        .map(|(_, p)| p)
        .collect();
    let started = Instant::now();
    let mut ok = true;
    for pdf in &pdfs {
        match Command::new("pdftotext").arg(pdf).arg("-").output() {
            Ok(out) => ok &= out.status.success(),
            Err(_) => {
                println!(
                    "\npdftotext is not installed: no comparison (apt-get install poppler-utils)."
                );
                return Ok(());
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "\npdftotext (poppler), one process per file, same {} PDFs ({} pages): {seconds:.2} s = {:.0} pages/s{}",
        pdfs.len(),
        pdfs.len() * 20,
        (pdfs.len() * 20) as f64 / seconds,
        if ok { "" } else { " (some runs failed)" }
    );
    Ok(())
}
