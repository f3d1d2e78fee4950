//! The document library, as the CLI and the desktop app use it: where it lives, how PDF
//! workers are started, and the [`Library`] itself (from the `ingest` crate).
//!
//! A program that ingests PDFs must let [`pdf_worker_from_args`] run first thing in its
//! `main`, since PDF workers are that same executable started again:
//!
//! ```no_run
//! use memreader::library;
//!
//! fn main() -> anyhow::Result<()> {
//!     if let Some(code) = library::pdf_worker_from_args() {
//!         std::process::exit(code);
//!     }
//!     let lib = library::open(None)?; // --library, else MEMREADER_HOME, else the data dir
//!     let report = lib.ingest(&["books/".into()], &library::ingest_options()?, &mut |_| {})?;
//!     println!("{} ingested, {} failed", report.ingested.len(), report.failed.len());
//!     for hit in lib.search("white whale", &library::SearchOptions::default())? {
//!         println!("{} p.{:?}: {}", hit.title, hit.page, hit.snippet.marked("«", "»"));
//!     }
//!     Ok(())
//! }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use ingest::{
    Document, DocumentRecord, Failure, Format, Hit, IngestOptions, IngestReport, Ingested, Library,
    LibraryError, PdfIsolation, PdfWorker, Progress, SearchOptions, Section, Skipped, Snippet,
    Status,
};

/// The hidden subcommand that makes an executable a PDF worker: `EXE __extract-pdf FILE`.
pub const PDF_WORKER_COMMAND: &str = "__extract-pdf";

/// The environment variable naming the library directory.
pub const HOME_VARIABLE: &str = "MEMREADER_HOME";

/// Why the library could not be located or set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "cannot tell where the library goes: this system has no home or data directory; \
         pass --library DIR or set {HOME_VARIABLE}"
    )]
    NoDataDir,
    #[error("cannot find the running executable, needed to start PDF workers: {0}")]
    CurrentExe(std::io::Error),
    #[error(transparent)]
    Library(#[from] LibraryError),
}

/// The library directory: `explicit` (the `--library` flag), else `$MEMREADER_HOME`, else the
/// platform's data directory (`~/.local/share/memreader/library` on Linux,
/// `~/Library/Application Support/memreader/library` on macOS, `%APPDATA%\memreader\data\library`
/// on Windows).
pub fn library_dir(explicit: Option<&Path>) -> Result<PathBuf, SetupError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    if let Some(home) = std::env::var_os(HOME_VARIABLE).filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("", "", "memreader")
        .map(|dirs| dirs.data_dir().join("library"))
        .ok_or(SetupError::NoDataDir)
}

/// Opens (creating if needed) the library at [`library_dir`]`(explicit)`.
pub fn open(explicit: Option<&Path>) -> Result<Library, SetupError> {
    Ok(Library::open(&library_dir(explicit)?)?)
}

/// Ingestion options whose PDFs are extracted by this executable started again as a worker
/// (60 s and 2 GiB per PDF; change `pdf`'s limits as needed).
pub fn ingest_options() -> Result<IngestOptions, SetupError> {
    let exe = std::env::current_exe().map_err(SetupError::CurrentExe)?;
    Ok(IngestOptions::new(PdfIsolation::Worker(PdfWorker::new(
        exe,
        vec![OsString::from(PDF_WORKER_COMMAND)],
    ))))
}

/// If this process was started as a PDF worker (`EXE __extract-pdf FILE`), extracts FILE,
/// writes the answer to stdout and returns the exit code to end with; otherwise `None`.
pub fn pdf_worker_from_args() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != PDF_WORKER_COMMAND {
        return None;
    }
    match (args.next(), args.next()) {
        (Some(file), None) => Some(ingest::worker_main(Path::new(&file))),
        _ => {
            eprintln!("usage: {PDF_WORKER_COMMAND} FILE");
            Some(2)
        }
    }
}
