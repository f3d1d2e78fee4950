use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use memreader::ask::{self, Answer, AskEvent, AskOptions, Citation};
use memreader::book::{demo_book_paths, Book};
use memreader::library::{self, Hit, IngestReport, Library, PdfIsolation, SearchOptions, Status};
use memreader::memory::{self, ReadOptions, ReadReport};
use memreader::model::{self, Model};
use memreader::session::{self, HistoryEntry, DEFAULT_SESSION};
use memreader::{notes, snapshot};

/// MemReader: a reading assistant for long documents.
#[derive(Parser)]
#[command(name = "memreader", version)]
struct Cli {
    /// The library directory (default: $MEMREADER_HOME, else the platform's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    library: Option<PathBuf>,
    /// The model directory (config.json + model.safetensors; default: $MEMREADER_MODEL, else
    /// the bundled assets/model).
    #[arg(long, global = true, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Where the model runs: auto (a GPU when there is one), cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "auto", value_name = "DEVICE")]
    device: String,
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
        /// Then read the ingested documents into the model's memory (see `read`).
        #[arg(long)]
        read: bool,
    },
    /// Read documents (ids or unique prefixes; all ready documents when none is given) into
    /// the model's memory, resuming half-read ones. Exits with 130 when interrupted (the
    /// state so far is saved).
    Read {
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        /// Read at most this many tokens of each document (a prefix).
        #[arg(long, value_name = "N")]
        max_tokens: Option<u64>,
        /// Start over even when a memory or a half-read one exists.
        #[arg(long)]
        restart: bool,
        /// Save the memory every N tokens, so that a reading stopped by a crash resumes there.
        #[arg(long, value_name = "N", default_value_t = ReadOptions::default().checkpoint_tokens,
              value_parser = clap::value_parser!(u64).range(1..))]
        checkpoint_tokens: u64,
        /// The session the documents join.
        #[arg(long, default_value = DEFAULT_SESSION)]
        session: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask a question; the answer cites the sentences it comes from.
    Ask {
        question: String,
        /// Only ask these documents (ids or unique prefixes); repeatable.
        #[arg(long = "doc", value_name = "ID")]
        docs: Vec<String>,
        /// Citations to show.
        #[arg(long, default_value_t = 3)]
        citations: usize,
        /// Candidates the model reranks (0: none).
        #[arg(long, default_value_t = 5)]
        rerank: usize,
        /// Always extract the answer instead of generating it.
        #[arg(long)]
        no_generate: bool,
        /// The session whose history records the question.
        #[arg(long, default_value = DEFAULT_SESSION)]
        session: String,
        #[arg(long)]
        json: bool,
    },
    /// Show what a document's memory holds: each layer's notes with their source positions and
    /// passages, and how the notes spread over the document.
    Notes {
        id: String,
        /// Notes shown per layer (all with --json).
        #[arg(long, default_value_t = 8)]
        limit: usize,
        /// Slices of the document in the histogram.
        #[arg(long, default_value_t = 20)]
        bins: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show a session's questions and answers.
    History {
        #[arg(long, default_value = DEFAULT_SESSION)]
        session: String,
        #[arg(long)]
        json: bool,
    },
    /// Export or import a session's memories and history as one file.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
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
        /// Merge BM25 hits with the passages the documents' memories point at.
        #[arg(long)]
        memory: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a document (an id or a unique prefix of one) from the library.
    Remove { id: String },
    /// Ingest the bundled demo books into a temporary library, read them, and ask questions
    /// whose answers are known.
    Demo {
        /// A folder of .txt books to use instead of the bundled ones.
        #[arg(long)]
        books: Option<PathBuf>,
        /// Tokens read of each book on the CPU (0: whole books); a GPU reads whole books.
        #[arg(long, value_name = "N")]
        max_tokens: Option<u64>,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Write a session's memories and history to FILE.
    Export {
        #[arg(long, default_value = DEFAULT_SESSION)]
        session: String,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Restore a snapshot's memories and history into this library.
    Import {
        file: PathBuf,
        /// Restore under this session name (default: the one it was exported from).
        #[arg(long)]
        session: Option<String>,
    },
}

fn main() -> Result<()> {
    memmamba::alloc::single_malloc_arena();
    if let Some(code) = library::pdf_worker_from_args() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    let dir = cli.library.as_deref();
    let models = Models {
        dir: model::model_dir(cli.model.as_deref()),
        device: cli.device.clone(),
    };
    match cli.command {
        Command::Ingest {
            paths,
            jobs,
            pdf_timeout,
            pdf_memory,
            json,
            read,
        } => {
            let cancel = install_cancel()?;
            let options = IngestArgs {
                jobs,
                pdf_timeout,
                pdf_memory,
                json,
            };
            let library = library::open(dir)?;
            let (code, ingested) = ingest(&library, &paths, &options, &cancel)?;
            if read && code != 130 {
                let model = models.load()?;
                let options = ReadOptions {
                    cancel,
                    ..ReadOptions::default()
                };
                let reports = read_all(&library, &model, &ingested, &options)?;
                print_reads(&reports, json)?;
                if reports.iter().any(|r| r.cancelled) {
                    std::process::exit(130);
                }
            }
            std::process::exit(code);
        }
        Command::Read {
            ids,
            max_tokens,
            restart,
            checkpoint_tokens,
            session,
            json,
        } => {
            session::check_name(&session)?;
            let library = library::open(dir)?;
            let ids = if ids.is_empty() {
                library
                    .documents()?
                    .into_iter()
                    .filter(|d| d.status == Status::Ready)
                    .map(|d| d.id)
                    .collect()
            } else {
                ids.iter()
                    .map(|id| library.resolve(id))
                    .collect::<Result<Vec<_>, _>>()?
            };
            if ids.is_empty() {
                anyhow::bail!(
                    "the library at {} has no documents to read: `memreader ingest PATH` first",
                    library.dir().display()
                );
            }
            let model = models.load()?;
            let options = ReadOptions {
                max_tokens,
                checkpoint_tokens,
                restart,
                session,
                cancel: install_cancel()?,
            };
            let reports = read_all(&library, &model, &ids, &options)?;
            print_reads(&reports, json)?;
            if reports.iter().any(|r| r.cancelled) {
                std::process::exit(130);
            }
            Ok(())
        }
        Command::Ask {
            question,
            docs,
            citations,
            rerank,
            no_generate,
            session,
            json,
        } => {
            session::check_name(&session)?;
            let library = library::open(dir)?;
            let model = models.load_if_there()?;
            let options = AskOptions {
                docs: docs.clone(),
                citations,
                rerank,
                generate: !no_generate,
                ..AskOptions::default()
            };
            let answer = if json {
                ask::ask(&library, model.as_ref(), &question, &options)?
            } else {
                println!("Q: {question}");
                let mut printer = StreamPrinter::default();
                let answer =
                    ask::ask_with(&library, model.as_ref(), &question, &options, &mut |e| {
                        printer.show(e)
                    })?;
                printer.finish(&answer);
                answer
            };
            session::record(
                &library,
                &session,
                &HistoryEntry {
                    asked_at: session::now(),
                    docs,
                    answer: answer.clone(),
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
            Ok(())
        }
        Command::Notes {
            id,
            limit,
            bins,
            json,
        } => {
            let library = library::open(dir)?;
            let model = models.load()?;
            let report = notes::notes(&library, &model, &id, bins)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_notes(&report, limit);
            }
            Ok(())
        }
        Command::History { session, json } => {
            let library = library::open(dir)?;
            let session = session::load(&library, &session)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&session.history)?);
            } else if session.history.is_empty() {
                println!("No questions asked in session {:?} yet.", session.name);
            } else {
                for entry in &session.history {
                    print_answer(&entry.answer);
                    println!();
                }
            }
            Ok(())
        }
        Command::Snapshot(SnapshotCommand::Export { session, output }) => {
            let library = library::open(dir)?;
            let model = models.load()?;
            let started = std::time::Instant::now();
            let report = snapshot::export(&library, &model, &session, &output)?;
            println!(
                "Exported session {:?} ({} document(s), {} question(s)) to {}: {} bytes in {:.2} s",
                report.session,
                report.documents.len(),
                report.questions,
                report.path.display(),
                report.bytes,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Snapshot(SnapshotCommand::Import { file, session }) => {
            let library = library::open(dir)?;
            let model = models.load()?;
            let report = snapshot::import(&library, &model, &file, session.as_deref())?;
            println!(
                "Imported session {:?} from {}: {} document(s), {} question(s)",
                report.session,
                file.display(),
                report.documents.len(),
                report.questions
            );
            for doc in &report.documents {
                let note = if doc.in_library {
                    ""
                } else {
                    " (not in this library: ingest its file to ask about it)"
                };
                println!(
                    "  {}  {} ({} tokens read){note}",
                    short(&doc.id),
                    doc.title,
                    doc.tokens_read
                );
            }
            Ok(())
        }
        Command::List { json } => list(&library::open(dir)?, json),
        Command::Search {
            query,
            docs,
            limit,
            memory: true,
            json,
        } => {
            let library = library::open(dir)?;
            let model = models.load()?;
            let options = AskOptions {
                docs,
                rerank: 0,
                ..AskOptions::default()
            };
            let (cites, notices) = ask::search(&library, Some(&model), &query, &options, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cites)?);
                return Ok(());
            }
            for notice in notices {
                eprintln!("note: {notice}");
            }
            if cites.is_empty() {
                println!("No passages match {query:?}.");
            }
            for (i, c) in cites.iter().enumerate() {
                print_citation(i + 1, c);
            }
            Ok(())
        }
        Command::Search {
            query,
            docs,
            limit,
            memory: false,
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
        Command::Demo { books, max_tokens } => demo(
            books.unwrap_or_else(memreader::demo_books_dir),
            &models,
            max_tokens,
        ),
    }
}

/// Where the model is and where it runs; loaded only by the commands that need it.
struct Models {
    dir: PathBuf,
    device: String,
}

impl Models {
    /// Loads the model; a missing file is an error that names it.
    fn load(&self) -> Result<Model> {
        let choice = memmamba::device::parse_device(&self.device)?;
        let (device, notice) = memmamba::device::select(choice)?;
        if let Some(notice) = notice {
            eprintln!("note: {notice}");
        }
        Ok(Model::load(&self.dir, &device)?)
    }

    /// Loads the model, or None with a one-line notice when its files are not there.
    fn load_if_there(&self) -> Result<Option<Model>> {
        match self.load() {
            Ok(model) => Ok(Some(model)),
            Err(e) => match e.downcast::<memreader::Error>() {
                Ok(memreader::Error::ModelMissing { path }) => {
                    eprintln!(
                        "note: no model ({} is missing): answering from BM25 and extraction only",
                        path.display()
                    );
                    Ok(None)
                }
                Ok(other) => Err(other.into()),
                Err(other) => Err(other),
            },
        }
    }
}

/// A flag that the first Ctrl-C sets (work in progress stops cleanly); a second one exits.
fn install_cancel() -> Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: stop now; the next run cleans up and redoes what was open.
            std::process::exit(130);
        }
        eprintln!("\nStopping after the work in progress (Ctrl-C again to stop at once)...");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(cancel)
}

struct IngestArgs {
    jobs: Option<usize>,
    pdf_timeout: f64,
    pdf_memory: u64,
    json: bool,
}

/// Ingests `paths`; returns the exit code and the ids of the ingested documents.
fn ingest(
    library: &Library,
    paths: &[PathBuf],
    args: &IngestArgs,
    cancel: &Arc<AtomicBool>,
) -> Result<(i32, Vec<String>)> {
    let mut options = library::ingest_options()?;
    options.jobs = args.jobs.unwrap_or(0);
    if let PdfIsolation::Worker(worker) = &mut options.pdf {
        worker.timeout = Duration::try_from_secs_f64(args.pdf_timeout)
            .context("--pdf-timeout must be a positive number of seconds")?;
        worker.memory_limit_mib = args.pdf_memory;
    }
    options.cancel = cancel.clone();

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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, library.dir());
    }
    let code = if report.cancelled {
        130
    } else if report.failed.is_empty() {
        0
    } else {
        2
    };
    Ok((code, report.ingested.iter().map(|d| d.id.clone()).collect()))
}

/// Reads each document into memory with a progress bar (tokens/s, ETA); stops at a Ctrl-C.
fn read_all(
    library: &Library,
    model: &Model,
    ids: &[String],
    options: &ReadOptions,
) -> Result<Vec<ReadReport>> {
    let mut reports = Vec::new();
    for id in ids {
        if options.cancel.load(Ordering::SeqCst) {
            break;
        }
        let title = library.document(id)?.display_title();
        let bar = ProgressBar::new(0);
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tokens, {per_sec}, ETA {eta} {msg}",
            )
            .context("progress bar template")?,
        );
        bar.set_message(title.clone());
        let mut started = false;
        let report = memory::read(library, model, id, options, &mut |p| {
            bar.set_length(p.target);
            bar.set_position(p.done);
            if !started {
                bar.reset_eta();
                started = true;
            }
        })?;
        bar.finish_and_clear();
        reports.push(report);
    }
    Ok(reports)
}

fn print_reads(reports: &[ReadReport], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(reports)?);
        return Ok(());
    }
    for r in reports {
        if let Some(why) = &r.restarted {
            println!("note: {}: {why}", r.title);
        }
        let what = if r.up_to_date {
            "up to date".to_owned()
        } else {
            format!(
                "{} tokens in {:.1} s ({:.0} tokens/s{})",
                r.tokens_read - r.resumed_from,
                r.seconds,
                r.tokens_per_second,
                if r.resumed_from > 0 {
                    format!(", resumed at {}", r.resumed_from)
                } else {
                    String::new()
                }
            )
        };
        let stopped = if r.cancelled {
            "; interrupted: run the same command again to go on"
        } else {
            ""
        };
        println!(
            "read  {}  {}: {}/{} tokens in memory, {what}; memory {} KiB{stopped}",
            short(&r.doc_id),
            r.title,
            r.tokens_read,
            r.total_tokens,
            r.memory_bytes / 1024
        );
    }
    Ok(())
}

fn print_citation(n: usize, c: &Citation) {
    let mut parts = Vec::new();
    if let Some(s) = c.bm25 {
        parts.push(format!("bm25 {s:.2}"));
    }
    if let Some(s) = c.memory {
        parts.push(format!("memory {s:.3}"));
    }
    if let Some(s) = c.held {
        parts.push(format!("words held {s:.2}"));
    }
    if let Some(s) = c.model {
        parts.push(format!("model {s:+.3}"));
    }
    println!(
        "  [{n}] {} — {} [chars {}..{}] score {:.3} ({})  ({})",
        c.title,
        c.locator(),
        c.range.start,
        c.range.end,
        c.score,
        parts.join(", "),
        short(&c.doc_id)
    );
    println!(
        "      \"{}\"",
        c.quote.split_whitespace().collect::<Vec<_>>().join(" ")
    );
}

fn print_answer(answer: &Answer) {
    print_notices(answer);
    println!("Q: {}", answer.question);
    println!("A: {} ({})", one_line(&answer.text), answer_kind(answer));
    print_citations(answer);
}

fn print_notices(answer: &Answer) {
    for notice in &answer.notices {
        eprintln!("note: {notice}");
    }
}

fn print_citations(answer: &Answer) {
    for (i, c) in answer.citations.iter().enumerate() {
        print_citation(i + 1, c);
    }
}

/// `s` on one line, its blanks as single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where an answer's text comes from, for people.
fn answer_kind(answer: &Answer) -> String {
    match answer.kind {
        ask::AnswerKind::Generated => format!(
            "generated from [1], mean log-prob {:.2}",
            answer.confidence.unwrap_or(f32::NAN)
        ),
        ask::AnswerKind::Extracted => "extracted from [1]".to_owned(),
        ask::AnswerKind::None => "no answer".to_owned(),
    }
}

/// Prints an answer as `ask_with` streams it: "A: " and the text as it is generated; a text
/// that replaces it (an extracted answer) on an "A: " line of its own, the generated one marked
/// as not used; then, from the final answer, where it comes from, its citations and notices.
#[derive(Default)]
struct StreamPrinter {
    /// Whether the current line holds an answer ("A: " was printed).
    open: bool,
}

impl StreamPrinter {
    fn show(&mut self, event: AskEvent) {
        let text = match event {
            AskEvent::Delta(piece) => piece.replace(char::is_whitespace, " "),
            AskEvent::Replace(text) => {
                if self.open {
                    println!("  [generated, not used]");
                }
                self.open = false;
                one_line(&text)
            }
        };
        if !self.open {
            print!("A: ");
            self.open = true;
        }
        print!("{text}");
        // the piece shows now, not when the line ends
        std::io::Write::flush(&mut std::io::stdout()).ok();
    }

    fn finish(self, answer: &Answer) {
        if !self.open {
            print!("A: ");
        }
        println!(" ({})", answer_kind(answer));
        print_citations(answer);
        print_notices(answer);
    }
}

fn print_notes(report: &notes::NotesReport, limit: usize) {
    println!(
        "{} ({}): {} of {} tokens in memory",
        report.title,
        short(&report.doc_id),
        report.tokens_read,
        report.total_tokens
    );
    for layer in &report.layers {
        println!(
            "\nlayer {}: {} notes in {} slots",
            layer.layer,
            layer.notes.len(),
            layer.slots
        );
        for note in layer.notes.iter().take(limit) {
            let at = match (note.page, note.chapter) {
                (Some(p), _) => format!("p. {p}"),
                (None, Some(c)) => format!("chapter {}", c + 1),
                _ => String::new(),
            };
            println!(
                "  token {:>8}  ln score {:>10.3e}  char {:>8}  {at:<12} {:?}",
                note.position, note.log_score, note.char_offset, note.excerpt
            );
        }
        if layer.notes.len() > limit {
            println!("  ... {} more (--limit, --json)", layer.notes.len() - limit);
        }
    }
    let max = report.histogram.iter().copied().max().unwrap_or(0).max(1);
    println!(
        "\nnotes over the document ({} tokens per row, all layers):",
        report.bin_tokens
    );
    for (i, &n) in report.histogram.iter().enumerate() {
        let from = i as u64 * report.bin_tokens;
        println!(
            "  {:>9}.. {:>4} {}",
            from,
            n,
            "#".repeat((n * 40).div_ceil(max))
        );
    }
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
            memreader::ask::locator(hit.page, hit.chapter, hit.chapter_title.as_deref()),
            hit.range.start,
            hit.range.end,
            hit.score,
            short(&hit.doc_id)
        );
        println!("   {}", hit.snippet.marked(open, close).replace('\n', " "));
    }
}

/// The sentence the demo hides in the middle of its first book, and its question.
const PASS_KEY_SENTENCE: &str = "The pass key is 68491. Remember it. 68491 is the pass key.";

/// The demo's questions and a piece of text their answer (or its top citation) must hold.
const DEMO_QUESTIONS: [(&str, &str); 4] = [
    ("What is the pass key?", "68491"),
    (
        "What did Little Red-cap take to her grandmother?",
        "cakes and a flask of wine",
    ),
    ("How long had Hans served his master?", "seven years"),
    ("Does Life imitate Art?", "Life imitates Art"),
];

/// Tokens of each book the demo reads on the CPU unless told otherwise (a GPU reads them whole).
const DEMO_CPU_TOKENS: u64 = 4096;

fn demo(dir: PathBuf, models: &Models, max_tokens: Option<u64>) -> Result<()> {
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
    let result = demo_library(&library_dir, &books, models, max_tokens);
    // The demo library is scratch; failing to delete it is not worth failing the demo.
    let _ = std::fs::remove_dir_all(&library_dir);
    result
}

/// Copies the books into `dir`, the first one with [`PASS_KEY_SENTENCE`] as a paragraph of its
/// own halfway through.
fn stage_books(dir: &Path, books: &[PathBuf]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = Vec::new();
    for (i, book) in books.iter().enumerate() {
        let target = dir.join(book.file_name().unwrap_or_default());
        if i == 0 {
            let text = std::fs::read_to_string(book)
                .with_context(|| format!("cannot read {}", book.display()))?;
            let middle = text.len() / 2;
            let at = text[middle..]
                .find("\n\n")
                .map_or(text.len(), |p| middle + p);
            let staged = format!("{}\n\n{PASS_KEY_SENTENCE}{}", &text[..at], &text[at..]);
            std::fs::write(&target, staged)
                .with_context(|| format!("cannot write {}", target.display()))?;
        } else {
            std::fs::copy(book, &target)
                .with_context(|| format!("cannot copy {}", book.display()))?;
        }
        out.push(target);
    }
    Ok(out)
}

/// Ingests the books into a scratch library, searches them, reads them into memory (when the
/// model is there) and asks the demo's questions.
fn demo_library(
    dir: &Path,
    books: &[PathBuf],
    models: &Models,
    max_tokens: Option<u64>,
) -> Result<()> {
    let books = stage_books(&dir.join("books"), books)?;
    let library = Library::open(&dir.join("library"))?;
    let report = library.ingest(&books, &library::ingest_options()?, &mut |_| {})?;
    println!(
        "\nIngested {} book(s) into a scratch library ({:.1} MB in {:.2} s); {} failed. The \
         first one has a pass key hidden halfway through: {PASS_KEY_SENTENCE:?}",
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

    let model = match models.load() {
        Ok(model) => Some(model),
        Err(e) => match e.downcast_ref::<memreader::Error>() {
            Some(memreader::Error::ModelMissing { path }) => {
                println!(
                    "\nThe model is absent ({} is missing): the answers below come from BM25 and \
                     extraction alone, without reading into memory.",
                    path.display()
                );
                None
            }
            _ => return Err(e),
        },
    };
    if let Some(model) = &model {
        let limit = match max_tokens {
            Some(0) => None,
            Some(n) => Some(n),
            None if model.device().is_cpu() => Some(DEMO_CPU_TOKENS),
            None => None,
        };
        match limit {
            Some(n) => println!(
                "\nReading the first {n} tokens of each book into memory on the CPU (the whole \
                 books take minutes there; `memreader demo --max-tokens 0` reads them whole)."
            ),
            None => println!("\nReading the whole books into memory."),
        }
        let ids: Vec<String> = report.ingested.iter().map(|d| d.id.clone()).collect();
        let options = ReadOptions {
            max_tokens: limit,
            ..ReadOptions::default()
        };
        let reads = read_all(&library, model, &ids, &options)?;
        print_reads(&reads, false)?;
    }
    let mut right = 0;
    for (question, expected) in DEMO_QUESTIONS {
        println!();
        let mut answer = ask::ask(&library, model.as_ref(), question, &AskOptions::default())?;
        if model.is_none() {
            // said once above
            answer.notices.clear();
        }
        let holds = |s: &str| s.contains(expected);
        let found =
            holds(&answer.text) || answer.citations.first().is_some_and(|c| holds(&c.quote));
        right += usize::from(found);
        print_answer(&answer);
        println!(
            "  expected {expected:?}: {}",
            if found {
                "found in the answer or its first citation"
            } else {
                "NOT found"
            }
        );
    }
    println!(
        "\n{right} of {} answers hold the expected text.",
        DEMO_QUESTIONS.len()
    );
    if model.is_none() {
        println!(
            "\nNot there yet: the trained MemMamba weights; without them the demo cannot read \
             the books into memory, point at passages from memory, rerank or generate answers."
        );
    }
    Ok(())
}
