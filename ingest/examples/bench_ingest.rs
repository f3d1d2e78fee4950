//! Ingestion benchmark on a generated library of mixed formats:
//!
//! 1. parse throughput per format (in process, one thread: sniff + parse + passages) on a
//!    sample of the corpus;
//! 2. bulk ingestion of the whole corpus through `Library::ingest`, as `memreader ingest` does
//!    it (all cores, PDFs in worker processes with limits: this program started again with
//!    `__extract-pdf FILE`), with the resident memory at 25, 50, 75 and 100 % of the files;
//! 3. search latency over the library that gives;
//! 4. `pdftotext` (poppler) on the corpus's PDFs, if it is installed.
//!
//!     cargo run -p ingest --example bench_ingest [-- FILES [REAL_FILE...]]
//!
//! REAL_FILEs (real PDFs and books) are timed first, each on its own: parsed in process on one
//! thread, and PDFs also by `pdftotext`.
//!
//! FILES (default 2000) are generated in a temporary folder by `ingest::fixtures` from
//! English-like text with a Zipf-like vocabulary (some words accented): plain text, Markdown,
//! HTML, EPUB 2 and 3 and PDF, from a few hundred words to about 60,000, and one file in ten
//! broken (empty, truncated, encrypted, image-only, not what its name says, ...).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use ingest::{
    parse, sniff, split_passages, IngestOptions, Library, PdfIsolation, PdfWorker, SearchOptions,
};

/// The hidden argument that makes this program a PDF worker.
const WORKER_ARG: &str = "__extract-pdf";

/// A xorshift generator: the corpus and the queries are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SYLLABLES: [&str; 32] = [
    "ka", "lo", "mi", "ren", "sa", "tor", "vel", "du", "bra", "che", "fin", "gal", "hol", "ist",
    "jun", "kel", "mar", "nor", "ost", "pel", "qui", "ros", "sul", "tam", "ber", "vin", "wes",
    "zé", "ün", "ça", "gor", "lin",
];
const VOCABULARY: usize = 20_000;

/// The `rank`-th word of the vocabulary: two to four syllables.
fn word(rank: usize) -> String {
    let mut n = rank + SYLLABLES.len();
    let mut out = String::new();
    while n > 0 {
        out.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
    }
    out
}

/// A word rank drawn from a Zipf-like law: rank r with probability about 1 / r.
fn zipf(rng: &mut Rng) -> usize {
    ((VOCABULARY as f64).powf(rng.unit()) as usize - 1).min(VOCABULARY - 1)
}

/// `sentences` sentences of 6 to 20 words.
fn prose(rng: &mut Rng, sentences: usize) -> String {
    let mut out = String::new();
    for s in 0..sentences {
        if s > 0 {
            out.push_str(if s % 6 == 0 { "\n\n" } else { " " });
        }
        let words = 6 + rng.below(15);
        for w in 0..words {
            let next = word(zipf(rng));
            if w == 0 {
                let mut chars = next.chars();
                out.extend(chars.next().into_iter().flat_map(char::to_uppercase));
                out.push_str(chars.as_str());
            } else {
                out.push(' ');
                out.push_str(&next);
            }
        }
        out.push('.');
    }
    out
}

/// Sentences in a file: most files small, some books, a few long ones (about 13 words each).
fn size(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 3000 + rng.below(2000),
        1..=5 => 500 + rng.below(1000),
        _ => 20 + rng.below(200),
    }
}

/// `parts` chapters of `sentences` in all, titled `Chapter n`.
fn chapters(rng: &mut Rng, sentences: usize, parts: usize) -> Vec<(String, String)> {
    (1..=parts)
        .map(|c| {
            (
                format!("Chapter {c}"),
                prose(rng, (sentences / parts).max(1)),
            )
        })
        .collect()
}

fn pairs(chapters: &[(String, String)]) -> Vec<(&str, &str)> {
    chapters
        .iter()
        .map(|(t, b)| (t.as_str(), b.as_str()))
        .collect()
}

/// File `i` of the corpus: its format's folder, its name and its bytes.
fn file(i: usize, rng: &mut Rng) -> (&'static str, String, Vec<u8>) {
    let sentences = size(rng);
    let parts = (sentences / 150).clamp(1, 40);
    match i % 10 {
        0..=2 => {
            let body: String = chapters(rng, sentences, parts)
                .iter()
                .map(|(t, b)| format!("\n\n\n{}\n\n{b}", t.to_uppercase()))
                .collect();
            ("text", format!("book{i}.txt"), body.into_bytes())
        }
        3 | 4 => {
            let body: String = chapters(rng, sentences, parts)
                .iter()
                .map(|(t, b)| format!("## {t}\n\n{b}\n\n"))
                .collect();
            let md = format!("---\ntitle: Notes {i}\n---\n\n# Notes {i}\n\n{body}");
            ("markdown", format!("notes{i}.md"), md.into_bytes())
        }
        5 | 6 => {
            let body: String = chapters(rng, sentences, parts)
                .iter()
                .map(|(t, b)| format!("<h2>{t}</h2>\n<p>{}</p>\n", b.replace("\n\n", "</p><p>")))
                .collect();
            let html = format!(
                "<!DOCTYPE html><html lang=\"en\"><head><title>Page {i}</title>\
                 <style>p {{ margin: 0 }}</style></head><body><h1>Page {i}</h1>{body}</body></html>"
            );
            ("html", format!("page{i}.html"), html.into_bytes())
        }
        7 => {
            let version = [EpubVersion::Two, EpubVersion::Three][i / 10 % 2];
            let chapters = chapters(rng, sentences, parts);
            let epub = fixtures::epub(
                version,
                &format!("Book {i}"),
                "A. Writer",
                &pairs(&chapters),
                EpubFlaws::default(),
            );
            ("epub", format!("book{i}.epub"), epub)
        }
        8 => {
            // Pages of about 400 words; PDFs are kept to 60 pages.
            let pages: Vec<String> = (0..(sentences / 30).clamp(1, 60))
                .map(|_| prose(rng, 30))
                .collect();
            let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
            ("pdf", format!("paper{i}.pdf"), fixtures::pdf(&refs))
        }
        _ => broken(i, rng),
    }
}

/// A broken file, of the kinds users have.
fn broken(i: usize, rng: &mut Rng) -> (&'static str, String, Vec<u8>) {
    let text = prose(rng, 40);
    let (name, bytes) = match i / 10 % 8 {
        0 => (format!("empty{i}.txt"), Vec::new()),
        1 => {
            let pdf = fixtures::pdf(&[&text, &text]);
            (format!("truncated{i}.pdf"), pdf[..pdf.len() / 2].to_vec())
        }
        2 => (
            format!("locked{i}.pdf"),
            fixtures::encrypted_pdf(&[&text], "secret"),
        ),
        3 => (format!("scan{i}.pdf"), fixtures::image_only_pdf(3)),
        4 => (format!("photo{i}.pdf"), fixtures::png()),
        5 => (format!("binary{i}.txt"), vec![0; 4096]),
        6 => {
            let flaws = EpubFlaws {
                missing_spine_item: true,
                ..EpubFlaws::default()
            };
            let chapters = [("One", text.as_str()), ("Two", "Gone.")];
            let epub = fixtures::epub(EpubVersion::Three, "Broken", "A", &chapters, flaws);
            (format!("missing{i}.epub"), epub)
        }
        _ => {
            let chapters = [("One", text.as_str())];
            let epub = fixtures::epub(
                EpubVersion::Two,
                "Cut",
                "A",
                &chapters,
                EpubFlaws::default(),
            );
            (format!("cut{i}.epub"), epub[..epub.len() / 2].to_vec())
        }
    };
    ("broken", name, bytes)
}

/// A field of /proc/self/status (`VmRSS`, `RssAnon`, `RssFile`, `VmHWM`) in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some(WORKER_ARG) {
        let path = args.next().ok_or("the worker needs a file")?;
        std::process::exit(ingest::worker_main(Path::new(&path)));
    }
    let count: usize = first.map_or(Ok(2000), |s| s.parse())?;
    let real: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if !real.is_empty() {
        real_files(&real)?;
    }
    let dir = tempfile::tempdir()?;
    let corpus = dir.path().join("corpus");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut files: Vec<(&'static str, PathBuf)> = Vec::with_capacity(count);
    let mut corpus_bytes = 0u64;
    let started = Instant::now();
    for i in 0..count {
        let (format, name, bytes) = file(i, &mut rng);
        // 100 files to a folder, as a library of folders has them.
        let path = corpus.join(format!("shelf{:02}", i / 100)).join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(&corpus))?;
        std::fs::write(&path, &bytes)?;
        corpus_bytes += bytes.len() as u64;
        files.push((format, path));
    }
    println!(
        "Corpus: {count} files, {:.1} MB, generated in {:.1} s.\n",
        corpus_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    parse_table(&files)?;

    let worker = PdfWorker::new(std::env::current_exe()?, vec![WORKER_ARG.into()]);
    let library = Library::open(&dir.path().join("library"))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut marks: Vec<(usize, f64, [f64; 4])> = Vec::new();
    let mut next_mark = 1;
    // The highest RSS since the last mark, in KiB, sampled every 20 ms by a thread of its own.
    let highest = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (highest, stop) = (highest.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                highest.fetch_max((status_mib("VmRSS") * 1024.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let report = library.ingest(
        std::slice::from_ref(&corpus),
        &IngestOptions::new(PdfIsolation::Worker(worker)),
        &mut |p| {
            if p.done * 4 >= p.total * next_mark {
                let [rss, anon, file] = ["VmRSS", "RssAnon", "RssFile"].map(status_mib);
                let high = highest.swap(0, Ordering::Relaxed) as f64 / 1024.0;
                let at = started.elapsed().as_secs_f64();
                marks.push((p.done, at, [rss, anon, file, high.max(rss)]));
                next_mark += 1;
            }
        },
    )?;
    stop.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| "the RSS sampler panicked")?;
    let seconds = started.elapsed().as_secs_f64();
    let passages: usize = report.ingested.iter().map(|d| d.passages).sum();
    println!(
        "\nBulk ingestion (Library::ingest, {threads} threads, PDFs in worker processes): {} \
         files, {:.1} MB in {seconds:.1} s; {} ingested, {} failed, {} skipped.\n",
        count,
        report.bytes as f64 / 1e6,
        report.ingested.len(),
        report.failed.len(),
        report.skipped.len()
    );
    println!("| files/s | MB/s | passages | passages/s |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {:.0} | {:.2} | {passages} | {:.0} |\n",
        count as f64 / seconds,
        report.bytes as f64 / 1e6 / seconds,
        passages as f64 / seconds
    );
    println!(
        "| files done | s | RSS MiB | anonymous | file-backed (index mmap) | highest RSS since \
         the row before |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (done, at, [rss, anon, file, high]) in &marks {
        println!("| {done} | {at:.1} | {rss:.0} | {anon:.0} | {file:.0} | {high:.0} |");
    }
    let mut reasons: Vec<String> = report
        .failed
        .iter()
        .map(|f| {
            f.error
                .split([':', '(', ';'])
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    println!("\nFailure kinds: {}", reasons.join("; "));

    search_latency(&library, &mut rng)?;
    let pdf_pages = report
        .ingested
        .iter()
        .filter(|d| d.format == ingest::Format::Pdf)
        .map(|d| d.pages)
        .sum();
    pdftotext(&files, pdf_pages);
    Ok(())
}

/// Each real file parsed in process on one thread (the best of three), and PDFs by
/// `pdftotext` (the best of three) for comparison.
fn real_files(paths: &[PathBuf]) -> Result<(), Box<dyn std::error::Error>> {
    println!("Real files, each parsed in process on one thread (sniff + parse + passages), best of three:\n");
    println!("| file | format | MB | pages | words | ms | pages/s | MB/s | pdftotext ms | pdftotext pages/s |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for path in paths {
        let data = std::fs::read(path)?;
        let format = sniff(&data, path)?;
        let best = |run: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>| {
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    run().map(|()| started.elapsed().as_secs_f64())
                })
                .try_fold(f64::INFINITY, |best, t| t.map(|t| best.min(t)))
        };
        let mut doc = None;
        let seconds = best(&mut || {
            let parsed = parse(format, &data)?;
            split_passages(&parsed, "bench");
            doc = Some(parsed);
            Ok(())
        })?;
        let doc = doc.ok_or("parsed")?;
        let pages = doc.pages.len();
        let per_page = |v: String| if pages > 0 { v } else { "-".to_owned() };
        let poppler = if format == ingest::Format::Pdf {
            let seconds = best(&mut || {
                let out = Command::new("pdftotext").arg(path).arg("-").output()?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err("pdftotext failed".into())
                }
            })?;
            format!("{:.0} | {:.0}", seconds * 1000.0, pages as f64 / seconds)
        } else {
            "- | -".to_owned()
        };
        println!(
            "| {} | {} | {:.2} | {} | {} | {:.0} | {} | {:.1} | {poppler} |",
            path.file_name().unwrap_or_default().to_string_lossy(),
            format.name(),
            data.len() as f64 / 1e6,
            per_page(pages.to_string()),
            doc.text.split_whitespace().count(),
            seconds * 1000.0,
            per_page(format!("{:.0}", pages as f64 / seconds)),
            data.len() as f64 / 1e6 / seconds
        );
    }
    println!();
    Ok(())
}

/// Parse throughput per format on up to 50 files of each, one thread.
fn parse_table(files: &[(&'static str, PathBuf)]) -> Result<(), Box<dyn std::error::Error>> {
    println!("Parsing in process, one thread (sniff + parse + passages), up to 50 files each:\n");
    println!("| format | files | MB | pages | words | seconds | pages/s | MB/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for format in ["pdf", "epub", "html", "markdown", "text"] {
        let (mut n, mut bytes, mut pages, mut words, mut seconds) = (0, 0, 0, 0, 0.0);
        for (_, path) in files.iter().filter(|(f, _)| *f == format).take(50) {
            let data = std::fs::read(path)?;
            let started = Instant::now();
            let doc = parse(sniff(&data, path)?, &data)?;
            let passages = split_passages(&doc, "bench");
            seconds += started.elapsed().as_secs_f64();
            assert!(!passages.is_empty());
            n += 1;
            bytes += data.len();
            pages += doc.pages.len();
            words += doc.text.split_whitespace().count();
        }
        let per_page = |v: String| if pages > 0 { v } else { "-".to_owned() };
        println!(
            "| {format} | {n} | {:.1} | {} | {words} | {seconds:.2} | {} | {:.1} |",
            bytes as f64 / 1e6,
            per_page(pages.to_string()),
            per_page(format!("{:.0}", pages as f64 / seconds)),
            bytes as f64 / 1e6 / seconds
        );
    }
    Ok(())
}

/// p50 and p99 of 500 searches (300 of one or two words, 100 of three, 100 phrases), after
/// 50 to warm up.
fn search_latency(library: &Library, rng: &mut Rng) -> Result<(), Box<dyn std::error::Error>> {
    let queries: Vec<String> = (0..550)
        .map(|i| match i % 5 {
            0..=2 => (0..1 + i % 2)
                .map(|_| word(zipf(rng)))
                .collect::<Vec<_>>()
                .join(" "),
            3 => (0..3)
                .map(|_| word(zipf(rng)))
                .collect::<Vec<_>>()
                .join(" "),
            _ => format!("\"{} {}\"", word(zipf(rng)), word(zipf(rng))),
        })
        .collect();
    let options = SearchOptions::default();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut hits = 0;
    for (i, query) in queries.iter().enumerate() {
        let (started, cpu_started) = (Instant::now(), thread_cpu_ms());
        let found = library.search(query, &options)?;
        if i >= 50 {
            wall.push(started.elapsed().as_secs_f64() * 1000.0);
            cpu.push(thread_cpu_ms() - cpu_started);
            hits += found.len();
        }
    }
    println!(
        "\nSearch (top 10 with snippets), {} queries, {:.1} hits per query:\n",
        wall.len(),
        hits as f64 / wall.len() as f64
    );
    println!("| ms | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (name, times) in [("wall clock", &mut wall), ("CPU (this thread)", &mut cpu)] {
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            percentile(times, 0.5),
            percentile(times, 0.99),
            times[times.len() - 1]
        );
    }
    Ok(())
}

/// The CPU time of this thread, in ms: unlike the wall clock, not stretched by other
/// processes on a shared machine (a search runs on the calling thread).
fn thread_cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, which lives for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1000.0 + t.tv_nsec as f64 / 1e6
}

/// `pdftotext`, one process per file, on the corpus's good PDFs (`pages` pages in all).
fn pdftotext(files: &[(&'static str, PathBuf)], pages: usize) {
    let pdfs: Vec<&PathBuf> = files
        .iter()
        .filter(|(f, _)| *f == "pdf")
        .map(|(_, p)| p)
        .collect();
    let started = Instant::now();
    let mut failed = 0;
    for pdf in &pdfs {
        match Command::new("pdftotext").arg(pdf).arg("-").output() {
            Ok(out) => failed += usize::from(!out.status.success()),
            Err(_) => {
                println!(
                    "\npdftotext is not installed: no comparison (apt-get install poppler-utils)."
                );
                return;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "\npdftotext (poppler), one process per file, one at a time, the {} good PDFs ({pages} \
         pages): {seconds:.1} s = {:.0} pages/s ({failed} failed).",
        pdfs.len(),
        pages as f64 / seconds,
    );
}
