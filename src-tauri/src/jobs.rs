//! The background jobs: bulk ingestion ([`run`] drives `Library::ingest` and turns its
//! progress into [`IngestEvent`]s, sent to the window as `ingest` events) and reading documents
//! into memory ([`read`], [`ReadEvent`]s as `read` events).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use memreader::library::{IngestOptions, IngestReport, Library, Progress};
use memreader::memory::{ReadOptions, ReadReport};
use memreader::model::Model;
use serde::Serialize;

/// The name of the event that carries [`IngestEvent`]s to the window.
pub const INGEST_EVENT: &str = "ingest";

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ingested,
    Skipped,
    Failed,
    /// Left alone because the job was cancelled before the file's turn.
    NotStarted,
}

/// One file done, as the progress panel lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDone {
    pub path: PathBuf,
    pub outcome: Outcome,
}

/// The events of one ingestion job, in order: `started`, any number of `progress`, `finished`;
/// or `refused` alone, for files dropped on the window when no job could start.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IngestEvent {
    /// Files were dropped on the window but cannot be added now: `error` says why (another job
    /// runs, the library cannot be opened).
    Refused {
        error: String,
    },
    Started {
        job: u64,
        paths: Vec<PathBuf>,
    },
    /// Where the job stands, with the files done since the previous `progress`.
    Progress {
        job: u64,
        total: usize,
        done: usize,
        ingested: usize,
        skipped: usize,
        failed: usize,
        /// Bytes of the files done so far.
        bytes: u64,
        /// Since the job started.
        seconds: f64,
        files: Vec<FileDone>,
    },
    /// The report, or the error that stopped the whole job (the library could not be
    /// written, say); files that fail alone are in the report.
    Finished {
        job: u64,
        report: Option<IngestReport>,
        error: Option<String>,
    },
}

/// Ingests `paths` into `library`, calling `emit` with `started` and then `progress` at most
/// once per `interval` (and once more at the end); returns the `finished` event, for the caller
/// to send once it is ready for the next job.
pub fn run(
    job: u64,
    library: &Library,
    paths: &[PathBuf],
    options: &IngestOptions,
    interval: Duration,
    emit: &mut dyn FnMut(IngestEvent),
) -> IngestEvent {
    emit(IngestEvent::Started {
        job,
        paths: paths.to_vec(),
    });
    let started = Instant::now();
    let mut last_sent: Option<Instant> = None;
    let mut previous: Option<Progress> = None;
    let mut files = Vec::new();
    let progress_event = |p: &Progress, files: Vec<FileDone>| IngestEvent::Progress {
        job,
        total: p.total,
        done: p.done,
        ingested: p.ingested,
        skipped: p.skipped,
        failed: p.failed,
        bytes: p.bytes,
        seconds: started.elapsed().as_secs_f64(),
        files,
    };
    let result = library.ingest(paths, options, &mut |p| {
        files.push(FileDone {
            path: p.path.clone(),
            outcome: outcome(previous.as_ref(), p),
        });
        if last_sent.is_none_or(|at| at.elapsed() >= interval) || p.done == p.total {
            emit(progress_event(p, std::mem::take(&mut files)));
            last_sent = Some(Instant::now());
        }
        previous = Some(p.clone());
    });
    if let Some(p) = previous.filter(|_| !files.is_empty()) {
        emit(progress_event(&p, files));
    }
    match result {
        Ok(report) => IngestEvent::Finished {
            job,
            report: Some(report),
            error: None,
        },
        Err(err) => IngestEvent::Finished {
            job,
            report: None,
            error: Some(err.to_string()),
        },
    }
}

/// What became of the file `now` reports, from the counts that went up since `before`.
fn outcome(before: Option<&Progress>, now: &Progress) -> Outcome {
    let (ingested, skipped, failed) =
        before.map_or((0, 0, 0), |b| (b.ingested, b.skipped, b.failed));
    if now.ingested > ingested {
        Outcome::Ingested
    } else if now.skipped > skipped {
        Outcome::Skipped
    } else if now.failed > failed {
        Outcome::Failed
    } else {
        Outcome::NotStarted
    }
}

/// The name of the event that carries [`ReadEvent`]s to the window.
pub const READ_EVENT: &str = "read";

/// The events of one reading job: `started`, then per document any number of `progress` and
/// one `document`, then `finished`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReadEvent {
    Started {
        job: u64,
        /// The documents' titles, in reading order.
        titles: Vec<String>,
    },
    Progress {
        job: u64,
        /// Which document (from 0) of how many.
        index: usize,
        count: usize,
        doc_id: String,
        /// Tokens read of the document (counting those of an earlier sitting), of `target`.
        done: u64,
        target: u64,
        /// Where this sitting started.
        resumed_from: u64,
        /// Since this document's sitting started.
        seconds: f64,
    },
    /// One document done: its report, or why it could not be read.
    Document {
        job: u64,
        index: usize,
        count: usize,
        doc_id: String,
        title: String,
        report: Option<ReadReport>,
        error: Option<String>,
    },
    Finished {
        job: u64,
        read: usize,
        failed: usize,
        cancelled: bool,
    },
}

/// Reads `docs` (id and title) into memory one after the other with `model`, calling `emit`
/// with `started`, `progress` at most once per `interval`, and `document` after each; returns
/// the `finished` event. A document that fails does not stop the others; `cancel` stops the
/// job (the memory read so far is saved, and reading again resumes).
pub fn read(
    job: u64,
    library: &Library,
    model: &Model,
    docs: &[(String, String)],
    cancel: &std::sync::Arc<AtomicBool>,
    interval: Duration,
    emit: &mut dyn FnMut(ReadEvent),
) -> ReadEvent {
    emit(ReadEvent::Started {
        job,
        titles: docs.iter().map(|(_, title)| title.clone()).collect(),
    });
    let (mut read, mut failed) = (0, 0);
    let count = docs.len();
    for (index, (id, title)) in docs.iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        let options = ReadOptions {
            cancel: cancel.clone(),
            ..ReadOptions::default()
        };
        let started = Instant::now();
        let mut last_sent: Option<Instant> = None;
        let result = memreader::memory::read(library, model, id, &options, &mut |p| {
            if last_sent.is_none_or(|at| at.elapsed() >= interval) || p.done >= p.target {
                emit(ReadEvent::Progress {
                    job,
                    index,
                    count,
                    doc_id: id.clone(),
                    done: p.done,
                    target: p.target,
                    resumed_from: p.resumed_from,
                    seconds: started.elapsed().as_secs_f64(),
                });
                last_sent = Some(Instant::now());
            }
        });
        let (report, error) = match result {
            Ok(report) => {
                read += usize::from(!report.cancelled);
                (Some(report), None)
            }
            Err(err) => {
                failed += 1;
                (None, Some(err.to_string()))
            }
        };
        emit(ReadEvent::Document {
            job,
            index,
            count,
            doc_id: id.clone(),
            title: title.clone(),
            report,
            error,
        });
    }
    ReadEvent::Finished {
        job,
        read,
        failed,
        cancelled: cancel.load(Ordering::SeqCst),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use memreader::library::PdfIsolation;

    /// The tiny preset with the shipped tokenizer's vocabulary and random weights, saved in
    /// `dir` as a model directory and loaded on the CPU.
    pub(crate) fn tiny_model(dir: &std::path::Path) -> Model {
        let config = memmamba::Config {
            vocab_size: 16384,
            ..memmamba::Config::tiny()
        };
        let varmap = candle_nn::VarMap::new();
        let net = memmamba::MemMamba::init(&config, &varmap, &candle_core::Device::Cpu, 0).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        net.save(dir.join("model.safetensors")).unwrap();
        std::fs::write(dir.join("config.json"), config.to_json_string()).unwrap();
        Model::load(dir, &candle_core::Device::Cpu).unwrap()
    }

    fn progresses(events: &[IngestEvent]) -> Vec<&IngestEvent> {
        events
            .iter()
            .filter(|e| matches!(e, IngestEvent::Progress { .. }))
            .collect()
    }

    #[test]
    fn a_job_reports_every_file_with_its_outcome_and_ends_with_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let books = dir.path().join("books");
        std::fs::create_dir(&books).unwrap();
        std::fs::copy(
            memreader::demo_books_dir().join("intentions-wilde.txt"),
            books.join("intentions.txt"),
        )
        .unwrap();
        std::fs::write(books.join("broken.pdf"), b"%PDF-1.7\nnot a PDF at all").unwrap();
        let library = Library::open(&dir.path().join("library")).unwrap();
        let options = IngestOptions::new(PdfIsolation::InProcess);

        let mut events = Vec::new();
        let finished = run(
            7,
            &library,
            std::slice::from_ref(&books),
            &options,
            Duration::ZERO,
            &mut |e| events.push(e),
        );
        assert_eq!(
            events[0],
            IngestEvent::Started {
                job: 7,
                paths: vec![books.clone()]
            }
        );
        // An interval of zero sends every file as it is done.
        let progress = progresses(&events);
        assert_eq!(progress.len(), 2, "{events:?}");
        let mut outcomes = Vec::new();
        for event in &progress {
            let IngestEvent::Progress {
                job, total, files, ..
            } = event
            else {
                unreachable!()
            };
            assert_eq!((*job, *total, files.len()), (7, 2, 1));
            let name = files[0].path.file_name().unwrap().to_string_lossy();
            outcomes.push((name.into_owned(), files[0].outcome));
        }
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            outcomes,
            [
                ("broken.pdf".to_owned(), Outcome::Failed),
                ("intentions.txt".to_owned(), Outcome::Ingested)
            ]
        );
        let IngestEvent::Progress {
            done,
            ingested,
            failed,
            bytes,
            ..
        } = progress[1]
        else {
            unreachable!()
        };
        assert_eq!((*done, *ingested, *failed), (2, 1, 1));
        assert!(*bytes > 100_000, "{bytes}");

        let IngestEvent::Finished { job, report, error } = finished else {
            panic!("{finished:?}")
        };
        assert_eq!((job, error), (7, None));
        let report = report.unwrap();
        assert_eq!(report.ingested.len(), 1);
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed[0].path.ends_with("broken.pdf"));

        // The same folder again: the book is known, the broken PDF fails again.
        let mut again = Vec::new();
        run(
            8,
            &library,
            &[books],
            &options,
            Duration::from_secs(3600),
            &mut |e| again.push(e),
        );
        let files: Vec<Outcome> = progresses(&again)
            .iter()
            .flat_map(|e| match e {
                IngestEvent::Progress { files, .. } => files.iter().map(|f| f.outcome).collect(),
                _ => Vec::new(),
            })
            .collect();
        // A long interval batches: the first file goes at once, the rest with the last.
        assert_eq!(progresses(&again).len(), 2, "{again:?}");
        let mut sorted = files.clone();
        sorted.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(sorted, [Outcome::Failed, Outcome::Skipped]);
    }

    #[test]
    fn a_cancelled_job_leaves_its_files_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let book = dir.path().join("intentions.txt");
        std::fs::copy(
            memreader::demo_books_dir().join("intentions-wilde.txt"),
            &book,
        )
        .unwrap();
        let library = Library::open(&dir.path().join("library")).unwrap();
        let options = IngestOptions::new(PdfIsolation::InProcess);
        options
            .cancel
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut events = Vec::new();
        let finished = run(1, &library, &[book], &options, Duration::ZERO, &mut |e| {
            events.push(e)
        });
        let IngestEvent::Progress { files, done, .. } = progresses(&events)[0] else {
            unreachable!()
        };
        assert_eq!(*done, 0);
        assert_eq!(files[0].outcome, Outcome::NotStarted);
        let IngestEvent::Finished {
            report: Some(report),
            ..
        } = finished
        else {
            panic!("{finished:?}")
        };
        assert!(report.cancelled);
        assert_eq!(report.not_started, 1);
        assert!(library.documents().unwrap().is_empty());
    }

    #[test]
    fn a_missing_path_fails_alone_in_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path()).unwrap();
        let options = IngestOptions::new(PdfIsolation::InProcess);
        let mut events = Vec::new();
        let finished = run(
            2,
            &library,
            &[dir.path().join("no-such-file.txt")],
            &options,
            Duration::ZERO,
            &mut |e| events.push(e),
        );
        // Nothing was parsed, so no file went through `progress`.
        assert!(progresses(&events).is_empty(), "{events:?}");
        let IngestEvent::Finished {
            report: Some(report),
            error: None,
            ..
        } = finished
        else {
            panic!("{finished:?}")
        };
        assert_eq!(report.failed.len(), 1);
        assert!(
            report.failed[0].error.contains("cannot read it"),
            "{report:?}"
        );
    }
}
