//! Bulk ingestion: files and directories in, parsed in parallel, indexed by one writer.
//!
//! - Idempotent: a document is its content's BLAKE3 hash; a file whose hash is already ready
//!   is skipped; a file whose content changed since it was ingested from the same path is
//!   ingested again and its old passages are removed.
//! - Crash-safe and resumable: a document is written to the catalog as `indexing` before its
//!   passages go to the index writer, and marked `ready` only after the writer's commit;
//!   search shows ready documents only. The next ingestion first deletes the passages of
//!   documents left `indexing` by an interrupted run and ingests their files again.
//! - Isolated: PDFs are extracted by a [`PdfWorker`] process with time and memory limits, and
//!   the other parsers run under `catch_unwind`, so one bad file fails alone.

use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::{now, DocumentRecord, Status};
use crate::document::Document;
use crate::formats::pdf::{extract_pdf, pdf_document};
use crate::formats::{parse, ParseError};
use crate::index::Writer;
use crate::library::{Library, LibraryError};
use crate::passage::{split_passages, Passage};
use crate::sniff::{sniff, Format};
use crate::worker::PdfWorker;

/// File extensions picked up when walking a directory. Files named on the command line are
/// read whatever their name; the format always comes from the content.
pub const EXTENSIONS: [&str; 9] = [
    "pdf", "epub", "txt", "text", "md", "markdown", "html", "htm", "xhtml",
];

/// Where PDFs are extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdfIsolation {
    /// In a worker process with limits (what applications use).
    Worker(PdfWorker),
    /// In this process under `catch_unwind` (for tools and tests; a loop or an abort in
    /// pdf-extract takes the process down).
    InProcess,
}

/// Options of [`Library::ingest`].
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Files parsed at once; 0 for one per CPU.
    pub jobs: usize,
    pub pdf: PdfIsolation,
    /// Set to stop: files not yet started are left alone, finished ones are committed.
    pub cancel: Arc<AtomicBool>,
    /// Commit the index (making documents ready) after this many documents, or after
    /// `commit_interval`, whichever comes first.
    pub commit_every: usize,
    pub commit_interval: Duration,
}

impl IngestOptions {
    pub fn new(pdf: PdfIsolation) -> IngestOptions {
        IngestOptions {
            jobs: 0,
            pdf,
            cancel: Arc::new(AtomicBool::new(false)),
            commit_every: 200,
            commit_interval: Duration::from_secs(10),
        }
    }
}

/// Where a bulk ingestion stands; sent after each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub ingested: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Bytes of the files done so far.
    pub bytes: u64,
    /// The file just done.
    pub path: PathBuf,
}

/// A document added to the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingested {
    pub path: PathBuf,
    pub id: String,
    pub title: String,
    pub format: Format,
    pub pages: usize,
    pub chapters: usize,
    pub passages: usize,
    /// The id of the earlier version of this file, removed from the library.
    pub replaced: Option<String>,
}

/// A file left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub id: String,
    pub reason: String,
}

/// A file that could not be ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub path: PathBuf,
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// What a bulk ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    pub ingested: Vec<Ingested>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failure>,
    /// Documents left half-indexed by an interrupted run, whose passages were removed and
    /// whose files were queued again.
    pub recovered: usize,
    /// True when the run was cancelled; `not_started` files were left for the next run.
    pub cancelled: bool,
    pub not_started: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// What parsing one file gave.
enum Outcome {
    Parsed {
        id: String,
        bytes: u64,
        format: Format,
        document: Document,
        passages: Vec<Passage>,
    },
    Known {
        id: String,
        bytes: u64,
    },
    Failed {
        id: Option<String>,
        bytes: u64,
        format: Option<Format>,
        error: String,
    },
    NotStarted,
}

pub(crate) fn ingest(
    library: &Library,
    paths: &[PathBuf],
    options: &IngestOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<IngestReport, LibraryError> {
    let started = Instant::now();
    let mut writer = library.index().writer()?;
    let mut report = IngestReport::default();
    let redo = recover(library, &mut writer)?;
    report.recovered = redo.len();

    let (mut files, failures) = collect(paths);
    report.failed = failures;
    let mut listed: HashSet<PathBuf> = files.iter().cloned().collect();
    for path in redo {
        if path.is_file() && listed.insert(path.clone()) {
            files.push(path);
        }
    }
    let ready: Arc<HashMap<String, PathBuf>> = Arc::new(
        library
            .catalog()
            .with_status(Status::Ready)?
            .into_iter()
            .map(|r| (r.id, r.path))
            .collect(),
    );

    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| LibraryError::Io {
            path: library.dir().to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
    // Parsed documents wait for the single writer in a short queue: a parser that gets ahead
    // blocks on it, so memory stays flat however many files there are.
    let (tx, rx) = mpsc::sync_channel(jobs);
    let pdf = Arc::new(options.pdf.clone());
    for path in &files {
        let (tx, path, ready, pdf) = (tx.clone(), path.clone(), ready.clone(), pdf.clone());
        let cancel = options.cancel.clone();
        pool.spawn(move || {
            let outcome = if cancel.load(Ordering::Relaxed) {
                Outcome::NotStarted
            } else {
                process(&path, &ready, &pdf)
            };
            // The receiver lives until every file is answered; a send cannot fail before.
            let _ = tx.send((path, outcome));
        });
    }
    drop(tx);

    let total = files.len() + report.failed.len();
    let mut state = Progress {
        total,
        done: report.failed.len(),
        ingested: 0,
        skipped: 0,
        failed: report.failed.len(),
        bytes: 0,
        path: PathBuf::new(),
    };
    let mut pending: Vec<String> = Vec::new();
    let mut last_commit = Instant::now();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for (path, outcome) in rx {
        match outcome {
            Outcome::NotStarted => {
                report.not_started += 1;
                report.cancelled = true;
            }
            Outcome::Known { id, bytes } => {
                state.bytes += bytes;
                let reason = match ready.get(&id) {
                    Some(known) if known != &path => {
                        format!(
                            "already in the library (same content as {})",
                            known.display()
                        )
                    }
                    _ => "already in the library, unchanged".to_owned(),
                };
                report.skipped.push(Skipped {
                    path: path.clone(),
                    id,
                    reason,
                });
            }
            Outcome::Failed {
                id,
                bytes,
                format,
                error,
            } => {
                state.bytes += bytes;
                if let Some(id) = id {
                    library.catalog().put(&DocumentRecord {
                        id,
                        path: path.clone(),
                        format,
                        title: None,
                        author: None,
                        language: None,
                        status: Status::Failed,
                        bytes,
                        pages: 0,
                        chapters: 0,
                        passages: 0,
                        words: 0,
                        error: Some(error.clone()),
                        added_at: now(),
                        updated_at: now(),
                    })?;
                }
                report.failed.push(Failure {
                    path: path.clone(),
                    error,
                });
            }
            Outcome::Parsed {
                id,
                bytes,
                format,
                document,
                passages,
            } => {
                state.bytes += bytes;
                if let Some(first) = seen.get(&id) {
                    report.skipped.push(Skipped {
                        path: path.clone(),
                        id,
                        reason: format!(
                            "same content as {}, ingested in this run",
                            first.display()
                        ),
                    });
                } else {
                    seen.insert(id.clone(), path.clone());
                    let ingested = add(
                        library, &writer, &path, &id, bytes, format, &document, &passages,
                    )?;
                    report.ingested.push(ingested);
                    pending.push(id);
                }
            }
        }
        if pending.len() >= options.commit_every.max(1)
            || (!pending.is_empty() && last_commit.elapsed() >= options.commit_interval)
        {
            commit(library, &mut writer, &mut pending)?;
            last_commit = Instant::now();
        }
        state.done = report.ingested.len() + report.skipped.len() + report.failed.len();
        state.ingested = report.ingested.len();
        state.skipped = report.skipped.len();
        state.failed = report.failed.len();
        state.path = path;
        progress(&state);
    }
    commit(library, &mut writer, &mut pending)?;
    report.bytes = state.bytes;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Parses one file (in a pool thread).
fn process(path: &Path, ready: &HashMap<String, PathBuf>, pdf: &PdfIsolation) -> Outcome {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Outcome::Failed {
                id: None,
                bytes: 0,
                format: None,
                error: format!("cannot read the file: {e}"),
            }
        }
    };
    let id = blake3::hash(&bytes).to_hex().to_string();
    let size = bytes.len() as u64;
    if ready.contains_key(&id) {
        return Outcome::Known { id, bytes: size };
    }
    let fail = |format, error: ParseError| Outcome::Failed {
        id: Some(id.clone()),
        bytes: size,
        format,
        error: error.to_string(),
    };
    let format = match sniff(&bytes, path) {
        Ok(format) => format,
        Err(e) => return fail(None, e.into()),
    };
    let parsed = match (format, pdf) {
        (Format::Pdf, PdfIsolation::Worker(worker)) => {
            drop(bytes);
            worker
                .extract(path)
                .and_then(pdf_document)
                .map_err(ParseError::from)
        }
        (Format::Pdf, PdfIsolation::InProcess) => guarded(format, || {
            extract_pdf(&bytes)
                .and_then(pdf_document)
                .map_err(ParseError::from)
        }),
        _ => guarded(format, || parse(format, &bytes)),
    };
    match parsed {
        Ok(document) => {
            let passages = split_passages(&document, &id);
            Outcome::Parsed {
                id,
                bytes: size,
                format,
                document,
                passages,
            }
        }
        Err(e) => fail(Some(format), e),
    }
}

/// Runs a parser, turning a panic into an error.
fn guarded(
    format: Format,
    parser: impl FnOnce() -> Result<Document, ParseError>,
) -> Result<Document, ParseError> {
    panic::catch_unwind(AssertUnwindSafe(parser)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(ParseError::Panicked {
            format: format.name(),
            message,
        })
    })
}

/// Adds a parsed document: replaces an earlier version from the same path, stores the parsed
/// text, records it as `indexing` and hands its passages to the writer.
#[allow(clippy::too_many_arguments)]
fn add(
    library: &Library,
    writer: &Writer,
    path: &Path,
    id: &str,
    bytes: u64,
    format: Format,
    document: &Document,
    passages: &[Passage],
) -> Result<Ingested, LibraryError> {
    let mut replaced = None;
    let earlier = library.catalog().at_path(path)?;
    for old in earlier {
        if old.id != id {
            writer.delete(&old.id);
            library.catalog().delete(&old.id)?;
            library.remove_stored(&old.id)?;
            replaced = Some(old.id);
        }
    }
    let stored = library.document_path(id);
    let temporary = stored.with_extension("json.tmp");
    let json = serde_json::to_vec(document).map_err(|e| LibraryError::Io {
        path: stored.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&temporary, json)
        .and_then(|()| std::fs::rename(&temporary, &stored))
        .map_err(|source| LibraryError::Io {
            path: stored.clone(),
            source,
        })?;
    let record = DocumentRecord {
        id: id.to_owned(),
        path: path.to_owned(),
        format: Some(format),
        title: document.title.clone(),
        author: document.author.clone(),
        language: document.language.clone(),
        status: Status::Indexing,
        bytes,
        pages: document.pages.len() as u64,
        chapters: document.chapters.len() as u64,
        passages: passages.len() as u64,
        words: document.text.split_whitespace().count() as u64,
        error: None,
        added_at: now(),
        updated_at: now(),
    };
    library.catalog().put(&record)?;
    writer.delete(id);
    writer.add(document, passages)?;
    Ok(Ingested {
        path: path.to_owned(),
        id: id.to_owned(),
        title: record.display_title(),
        format,
        pages: document.pages.len(),
        chapters: document.chapters.len(),
        passages: passages.len(),
        replaced,
    })
}

/// Commits the writer, then marks the documents of the commit ready.
fn commit(
    library: &Library,
    writer: &mut Writer,
    pending: &mut Vec<String>,
) -> Result<(), LibraryError> {
    if pending.is_empty() {
        return Ok(());
    }
    writer.commit()?;
    library.catalog().mark_ready(pending)?;
    pending.clear();
    release_free_memory();
    Ok(())
}

/// Hands memory that was freed back to the operating system. glibc keeps freed blocks in its
/// heaps for reuse, and with documents of every size parsed on several threads and the
/// writer's buffers freed at each commit, what it keeps grows with the number of files (in
/// `bench_ingest 4000`, anonymous RSS grew from 69 MiB at 1,000 files to 147 MiB at 4,000,
/// where with glibc's trim and mmap thresholds fixed it stayed at 27-41 MiB); trimming after
/// each commit keeps it flat.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Deletes what an interrupted run left: passages and records of documents still `indexing`.
/// Returns their paths, to ingest again.
fn recover(library: &Library, writer: &mut Writer) -> Result<Vec<PathBuf>, LibraryError> {
    let stale = library.catalog().with_status(Status::Indexing)?;
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    for record in &stale {
        writer.delete(&record.id);
    }
    writer.commit()?;
    for record in &stale {
        library.catalog().delete(&record.id)?;
        library.remove_stored(&record.id)?;
    }
    Ok(stale.into_iter().map(|r| r.path).collect())
}

/// The files to ingest: files as given, directories walked recursively (sorted, hidden
/// entries and symlinked directories skipped, only [`EXTENSIONS`]). Paths are made absolute.
fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Failure>) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        match std::fs::metadata(&absolute) {
            Err(e) => failures.push(Failure {
                path: path.clone(),
                error: format!("cannot read it: {e}"),
            }),
            Ok(meta) if meta.is_dir() => walk(&absolute, &mut files, &mut failures),
            Ok(_) => files.push(absolute),
        }
    }
    files.retain(|f| seen.insert(f.clone()));
    (files, failures)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, failures: &mut Vec<Failure>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            failures.push(Failure {
                path: dir.to_owned(),
                error: format!("cannot list the folder: {e}"),
            });
            return;
        }
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if hidden {
            continue;
        }
        if meta.is_dir() {
            walk(&path, files, failures);
        } else if path.is_file()
            && path
                .extension()
                .is_some_and(|e| EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
        {
            files.push(path);
        }
    }
}
