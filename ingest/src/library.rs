//! A library: a directory with the catalog, the search index and the parsed documents. This is
//! the API that the CLI and the desktop app use (through `memreader::library`).
//!
//! ```no_run
//! use ingest::{IngestOptions, Library, PdfIsolation, SearchOptions};
//! # fn main() -> Result<(), ingest::LibraryError> {
//! let library = Library::open(std::path::Path::new("/tmp/my-library"))?;
//! let report = library.ingest(
//!     &["/home/me/books".into()],
//!     &IngestOptions::new(PdfIsolation::InProcess),
//!     &mut |_progress| {},
//! )?;
//! println!("{} ingested, {} failed", report.ingested.len(), report.failed.len());
//! for hit in library.search("white whale", &SearchOptions::default())? {
//!     println!("{} p. {:?}: {}", hit.title, hit.page, hit.snippet.marked("[", "]"));
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::bulk::{self, IngestOptions, IngestReport, Progress};
use crate::catalog::{Catalog, CatalogError, DocumentRecord, Status};
use crate::document::Document;
use crate::index::{Hit, Index, IndexError};

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("no document with id {0:?} in the library (`memreader list` shows the ids)")]
    NotFound(String),
    #[error("the id prefix {prefix:?} matches {count} documents; give more of the id")]
    Ambiguous { prefix: String, count: usize },
    #[error("{path}: the stored document is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
}

/// Options of [`Library::search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOptions {
    /// Only search these documents (ids or unique id prefixes); all when empty.
    pub docs: Vec<String>,
    /// The most hits to return.
    pub limit: usize,
}

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions {
            docs: Vec::new(),
            limit: 10,
        }
    }
}

/// A library directory: `catalog.sqlite`, `index/` and `documents/`.
pub struct Library {
    dir: PathBuf,
    catalog: Mutex<Catalog>,
    index: Index,
}

impl Library {
    /// Opens the library in `dir`, creating the directory and its parts if needed.
    pub fn open(dir: &Path) -> Result<Library, LibraryError> {
        for path in [dir.to_owned(), dir.join("documents")] {
            std::fs::create_dir_all(&path).map_err(|source| LibraryError::Io { path, source })?;
        }
        Ok(Library {
            dir: dir.to_owned(),
            catalog: Mutex::new(Catalog::open(&dir.join("catalog.sqlite"))?),
            index: Index::open(&dir.join("index"))?,
        })
    }

    /// The library's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn catalog(&self) -> MutexGuard<'_, Catalog> {
        // A panic while holding the lock cannot leave the connection half-changed (each call
        // is one statement or transaction), so a poisoned lock is still usable.
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// Ingests files and directories (recursively); see [`crate::bulk`].
    pub fn ingest(
        &self,
        paths: &[PathBuf],
        options: &IngestOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<IngestReport, LibraryError> {
        bulk::ingest(self, paths, options, progress)
    }

    /// Every document of the catalog (ready, failed, or being indexed), by title.
    pub fn documents(&self) -> Result<Vec<DocumentRecord>, LibraryError> {
        Ok(self.catalog().list()?)
    }

    /// The full id of the document whose id is or starts with `id` (at least 4 hex digits).
    pub fn resolve(&self, id: &str) -> Result<String, LibraryError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 4 {
            return Err(LibraryError::NotFound(id));
        }
        let mut matches = self.catalog().ids_with_prefix(&id, 2)?;
        match matches.len() {
            0 => Err(LibraryError::NotFound(id)),
            1 => Ok(matches.remove(0)),
            _ => Err(LibraryError::Ambiguous {
                count: self.catalog().ids_with_prefix(&id, usize::MAX >> 1)?.len(),
                prefix: id,
            }),
        }
    }

    /// A document's catalog record, by id or unique id prefix.
    pub fn document(&self, id: &str) -> Result<DocumentRecord, LibraryError> {
        let id = self.resolve(id)?;
        self.catalog().get(&id)?.ok_or(LibraryError::NotFound(id))
    }

    /// A ready document's parsed text and structure (what its passages' ranges point into).
    pub fn text(&self, id: &str) -> Result<Document, LibraryError> {
        let id = self.resolve(id)?;
        let path = self.document_path(&id);
        let bytes = std::fs::read(&path).map_err(|source| LibraryError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| LibraryError::Damaged {
            path,
            message: e.to_string(),
        })
    }

    pub(crate) fn document_path(&self, id: &str) -> PathBuf {
        self.dir.join("documents").join(format!("{id}.json"))
    }

    /// Searches the passages of ready documents; hits carry the document's title.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>, LibraryError> {
        let docs = options
            .docs
            .iter()
            .map(|id| self.resolve(id))
            .collect::<Result<Vec<_>, _>>()?;
        let catalog = self.catalog();
        let mut titles: HashMap<String, Option<String>> = HashMap::new();
        let mut failure = None;
        // Passages of a document that is not ready (an interrupted ingestion) stay hidden.
        let hits = self
            .index
            .search(query, &docs, options.limit.max(1), &mut |id| {
                if let Some(title) = titles.get(id) {
                    return title.clone();
                }
                let title = match catalog.get(id) {
                    Ok(record) => record
                        .filter(|r| r.status == Status::Ready)
                        .map(|r| r.display_title()),
                    Err(e) => {
                        failure.get_or_insert(e);
                        None
                    }
                };
                titles.insert(id.to_owned(), title.clone());
                title
            })?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(hits),
        }
    }

    /// Removes a document (id or unique id prefix): its passages, its record and its stored
    /// text. Returns the record it had.
    pub fn remove(&self, id: &str) -> Result<DocumentRecord, LibraryError> {
        let record = self.document(id)?;
        let mut writer = self.index.writer()?;
        writer.delete(&record.id);
        writer.commit()?;
        self.catalog().delete(&record.id)?;
        self.remove_stored(&record.id)?;
        Ok(record)
    }

    pub(crate) fn remove_stored(&self, id: &str) -> Result<(), LibraryError> {
        let path = self.document_path(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(LibraryError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }
}
