use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use memreader::book::{demo_book_paths, Book};
use memreader::library::{self, Hit, IngestReport, Library, PdfIsolation, SearchOptions};

/// MemReader: a reading assistant for long documents.
#[derive(Parser)]
#[command(name = "memreader", version)]
struct Cli {
    /// The library directory (default: $MEMREADER_HOME, else the platform's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    library: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add files and folders (recursively) to the library: PDF, EPUB, HTML, Markdown, text.
    /// Exits with 2 when some files failed (each is reported), 130 when interrupted.
    Ingest {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Files parsed at once (default: one per CPU).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Time limit for extracting one PDF, in seconds.
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        pdf_timeout: f64,
        /// Memory limit for extracting one PDF, in MiB.
        #[arg(long, default_value_t = 2048, value_name = "MIB")]
        pdf_memory: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the documents of the library.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Search the library's passages; hits carry their citation.
    Search {
        query: String,
        /// Only search this document (an id or a unique prefix of one); repeatable.
        #[arg(long = "doc", value_name = "ID")]
        docs: Vec<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Remove a document (an id or a unique prefix of one) from the library.
    Remove { id: String },
    /// Ingest the bundled demo books into a temporary library and search them.
    Demo {
        /// A folder of .txt books to use instead of the bundled ones.
        #[arg(long)]
        books: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    if let Some(code) = library::pdf_worker_from_args() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    let dir = cli.library.as_deref();
    match cli.command {
        Command::Ingest {
            paths,
            jobs,
            pdf_timeout,
            pdf_memory,
            json,
        } => {
            let code = ingest(dir, &paths, jobs, pdf_timeout, pdf_memory, json)?;
            std::process::exit(code);
        }
        Command::List { json } => list(&library::open(dir)?, json),
        Command::Search {
            query,
            docs,
            limit,
            json,
        } => {
            let hits = library::open(dir)?.search(&query, &SearchOptions { docs, limit })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("No passages match {query:?}.");
            } else {
                print_hits(&hits);
            }
            Ok(())
        }
        Command::Remove { id } => {
            let record = library::open(dir)?.remove(&id)?;
            println!(
                "Removed {} ({}, {} passages).",
                record.display_title(),
                record.id,
                record.passages
            );
            Ok(())
        }
        Command::Demo { books } => demo(books.unwrap_or_else(memreader::demo_books_dir)),
    }
}

fn ingest(
    dir: Option<&Path>,
    paths: &[PathBuf],
    jobs: Option<usize>,
    pdf_timeout: f64,
    pdf_memory: u64,
    json: bool,
) -> Result<i32> {
    let library = library::open(dir)?;
    let mut options = library::ingest_options()?;
    options.jobs = jobs.unwrap_or(0);
    if let PdfIsolation::Worker(worker) = &mut options.pdf {
        worker.timeout = Duration::try_from_secs_f64(pdf_timeout)
            .context("--pdf-timeout must be a positive number of seconds")?;
        worker.memory_limit_mib = pdf_memory;
    }
    let cancel = options.cancel.clone();
    ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: stop now; the next run cleans up and redoes what was open.
            std::process::exit(130);
        }
        eprintln!("\nStopping after the files in progress (Ctrl-C again to stop at once)...");
    })
    .context("cannot install the Ctrl-C handler")?;

    let bar = ProgressBar::new(0);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files, {per_sec}, ETA {eta} {msg}",
        )
        .context("progress bar template")?,
    );
    let started = std::time::Instant::now();
    let report = library.ingest(paths, &options, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{:.1} MB/s | {} ingested, {} skipped, {} failed",
            p.bytes as f64 / 1e6 / seconds,
            p.ingested,
            p.skipped,
            p.failed
        ));
    })?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, library.dir());
    }
    Ok(if report.cancelled {
        130
    } else if report.failed.is_empty() {
        0
    } else {
        2
    })
}

fn print_report(report: &IngestReport, dir: &Path) {
    for doc in &report.ingested {
        let replaced = match &doc.replaced {
            Some(old) => format!(", replaces {}", short(old)),
            None => String::new(),
        };
        println!(
            "ingested  {}  {} ({}, {} pages, {} chapters, {} passages{replaced})",
            short(&doc.id),
            doc.title,
            doc.format.name(),
            doc.pages,
            doc.chapters,
            doc.passages
        );
    }
    for skip in &report.skipped {
        println!(
            "skipped   {}  {}: {}",
            short(&skip.id),
            skip.path.display(),
            skip.reason
        );
    }
    for failure in &report.failed {
        println!("failed    {failure}");
    }
    if report.recovered > 0 {
        println!(
            "Redid {} document(s) left half-indexed by an interrupted run.",
            report.recovered
        );
    }
    println!(
        "{} ingested, {} skipped, {} failed ({:.1} MB in {:.1} s, {:.1} MB/s) into {}",
        report.ingested.len(),
        report.skipped.len(),
        report.failed.len(),
        report.bytes as f64 / 1e6,
        report.seconds,
        report.bytes as f64 / 1e6 / report.seconds.max(1e-3),
        dir.display()
    );
    if report.cancelled {
        println!(
            "Interrupted: {} file(s) not started; run the same command again to go on.",
            report.not_started
        );
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn list(library: &Library, json: bool) -> Result<()> {
    let docs = library.documents()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(());
    }
    if docs.is_empty() {
        println!("The library at {} is empty.", library.dir().display());
        return Ok(());
    }
    println!(
        "{:<12}  {:<8}  {:<8}  {:>5}  {:>5}  {:>8}  title",
        "id", "status", "format", "pages", "chap", "passages"
    );
    for doc in &docs {
        let format = doc.format.map_or("?", |f| f.name());
        let mut title = doc.display_title();
        if let Some(author) = &doc.author {
            title = format!("{title} ({author})");
        }
        if let Some(error) = &doc.error {
            title = format!("{}: {error}", doc.path.display());
        }
        println!(
            "{:<12}  {:<8}  {:<8}  {:>5}  {:>5}  {:>8}  {title}",
            short(&doc.id),
            doc.status.name(),
            format,
            doc.pages,
            doc.chapters,
            doc.passages
        );
    }
    Ok(())
}

fn print_hits(hits: &[Hit]) {
    let (open, close) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("«", "»")
    };
    for (i, hit) in hits.iter().enumerate() {
        println!(
            "{}. {} — {} [chars {}..{}] score {:.2}  ({})",
            i + 1,
            hit.title,
            locator(hit),
            hit.range.start,
            hit.range.end,
            hit.score,
            short(&hit.doc_id)
        );
        println!("   {}", hit.snippet.marked(open, close).replace('\n', " "));
    }
}

/// "p. 3", "chapter 2: Title", or both.
fn locator(hit: &Hit) -> String {
    let mut parts = Vec::new();
    if let Some(page) = hit.page {
        parts.push(format!("p. {page}"));
    }
    match (&hit.chapter_title, hit.chapter) {
        (Some(title), _) => parts.push(format!("chapter {title:?}")),
        (None, Some(n)) => parts.push(format!("chapter {}", n + 1)),
        _ => {}
    }
    if parts.is_empty() {
        "no page or chapter".to_owned()
    } else {
        parts.join(", ")
    }
}

fn demo(dir: PathBuf) -> Result<()> {
    println!(
        "MemReader {} demo on {}",
        memreader::version(),
        dir.display()
    );
    let paths = demo_book_paths(&dir)?;
    if paths.is_empty() {
        anyhow::bail!("{}: no .txt books in this folder", dir.display());
    }
    let mut books = Vec::new();
    for path in paths {
        let book = match Book::open(&path) {
            Ok(book) => book,
            Err(err) => {
                eprintln!("skipped: {err}");
                continue;
            }
        };
        let doc = &book.document;
        println!(
            "\n{} by {}: {} words, {} chapters, {} passages",
            book.title(),
            doc.author.as_deref().unwrap_or("unknown author"),
            book.words(),
            doc.chapters.len(),
            book.passages.len()
        );
        for chapter in doc.chapters.iter().take(5) {
            println!(
                "  chapter: {}",
                chapter.title.as_deref().unwrap_or("(untitled)")
            );
        }
        books.push(book.path);
    }

    let library_dir = std::env::temp_dir().join(format!("memreader-demo-{}", std::process::id()));
    let result = demo_library(&library_dir, &books);
    // The demo library is scratch; failing to delete it is not worth failing the demo.
    let _ = std::fs::remove_dir_all(&library_dir);
    result?;
    println!(
        "\nNot there yet: trained MemMamba weights, reading a document into the model's \
         memory, asking questions with model-ranked citations, snapshots (see README.md, Status)."
    );
    Ok(())
}

/// Ingests the books into a scratch library and runs a few searches on them.
fn demo_library(dir: &Path, books: &[PathBuf]) -> Result<()> {
    let library = Library::open(dir)?;
    let report = library.ingest(books, &library::ingest_options()?, &mut |_| {})?;
    println!(
        "\nIngested {} book(s) into a scratch library ({:.1} MB in {:.2} s); {} failed.",
        report.ingested.len(),
        report.bytes as f64 / 1e6,
        report.seconds,
        report.failed.len()
    );
    for failure in &report.failed {
        eprintln!("skipped: {failure}");
    }
    for query in ["wolf grandmother", "\"life imitates art\"", "golden bird"] {
        let hits = library.search(
            query,
            &SearchOptions {
                docs: Vec::new(),
                limit: 2,
            },
        )?;
        println!("\nSearch {query}: {} hit(s)", hits.len());
        print_hits(&hits);
    }
    Ok(())
}
