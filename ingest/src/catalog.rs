//! The catalog: one SQLite table of documents, keyed by content hash, with their path,
//! metadata, status, counts, error and timestamps. See docs/FORMATS.md, "Library directory".

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::sniff::Format;

/// The catalog's schema version, in SQLite's `user_version`. Version 2: the library's stored
/// documents and index locate text by char offsets (version 1: byte offsets).
pub const SCHEMA_VERSION: i64 = 2;

/// Why the catalog could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "catalog {path} has schema version {found}, newer than this MemReader's \
         ({SCHEMA_VERSION}); upgrade MemReader"
    )]
    NewerSchema { path: PathBuf, found: i64 },
}

/// Where a document is in its ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its passages are being added to the index; not visible to search.
    Indexing,
    /// Its passages are committed to the index and searchable.
    Ready,
    /// It could not be parsed; `error` says why.
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Indexing => "indexing",
            Status::Ready => "ready",
            Status::Failed => "failed",
        }
    }

    fn from_name(name: &str) -> Status {
        match name {
            "ready" => Status::Ready,
            "failed" => Status::Failed,
            _ => Status::Indexing,
        }
    }
}

/// One document of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRecord {
    /// The BLAKE3 hash of the file's bytes, 64 hex digits.
    pub id: String,
    /// The path it was ingested from (the last one, if the same content was seen twice).
    pub path: PathBuf,
    pub format: Option<Format>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
    pub status: Status,
    /// The file's size.
    pub bytes: u64,
    pub pages: u64,
    pub chapters: u64,
    pub passages: u64,
    pub words: u64,
    /// Why it failed, for [`Status::Failed`].
    pub error: Option<String>,
    /// Unix seconds when the document was first added and last changed.
    pub added_at: i64,
    pub updated_at: i64,
}

impl DocumentRecord {
    /// The title, else the file name.
    pub fn display_title(&self) -> String {
        self.title.clone().unwrap_or_else(|| {
            self.path.file_name().map_or_else(
                || self.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
    }
}

/// The catalog database.
pub struct Catalog {
    path: PathBuf,
    conn: Connection,
}

const COLUMNS: &str = "id, path, format, title, author, language, status, bytes, pages, \
                       chapters, passages, words, error, added_at, updated_at";

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let conn = Connection::open(path).map_err(|source| CatalogError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        let catalog = Catalog {
            path: path.to_owned(),
            conn,
        };
        catalog.migrate()?;
        Ok(catalog)
    }

    fn err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&self) -> Result<(), CatalogError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(CatalogError::NewerSchema {
                path: self.path.clone(),
                found: version,
            });
        }
        // A version-1 library located text by byte offsets: its ready documents go back to
        // `indexing`, hidden from search until the next ingestion removes their passages and
        // ingests their files again (the recovery of an interrupted run).
        let upgrade = if version == 1 {
            "UPDATE documents SET status = 'indexing' WHERE status = 'ready';"
        } else {
            ""
        };
        self.conn
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 BEGIN;
                 CREATE TABLE IF NOT EXISTS documents (
                     id TEXT PRIMARY KEY,
                     path TEXT NOT NULL,
                     format TEXT,
                     title TEXT,
                     author TEXT,
                     language TEXT,
                     status TEXT NOT NULL,
                     bytes INTEGER NOT NULL,
                     pages INTEGER NOT NULL DEFAULT 0,
                     chapters INTEGER NOT NULL DEFAULT 0,
                     passages INTEGER NOT NULL DEFAULT 0,
                     words INTEGER NOT NULL DEFAULT 0,
                     error TEXT,
                     added_at INTEGER NOT NULL,
                     updated_at INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS documents_path ON documents(path);
                 {upgrade}
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| self.err(e))
    }

    /// Inserts or replaces a document's record; `added_at` is kept if it existed.
    pub fn put(&self, record: &DocumentRecord) -> Result<(), CatalogError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO documents ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                     ON CONFLICT(id) DO UPDATE SET path = ?2, format = ?3, title = ?4,
                     author = ?5, language = ?6, status = ?7, bytes = ?8, pages = ?9,
                     chapters = ?10, passages = ?11, words = ?12, error = ?13,
                     updated_at = ?15"
                ),
                params![
                    record.id,
                    record.path.to_string_lossy(),
                    record.format.map(Format::name),
                    record.title,
                    record.author,
                    record.language,
                    record.status.name(),
                    record.bytes as i64,
                    record.pages as i64,
                    record.chapters as i64,
                    record.passages as i64,
                    record.words as i64,
                    record.error,
                    record.added_at,
                    record.updated_at,
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks documents ready, in one transaction.
    pub fn mark_ready(&mut self, ids: &[String]) -> Result<(), CatalogError> {
        let now = now();
        let path = &self.path;
        let err = |source| CatalogError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for id in ids {
            tx.execute(
                "UPDATE documents SET status = 'ready', updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// One document by id.
    pub fn get(&self, id: &str) -> Result<Option<DocumentRecord>, CatalogError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM documents WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The ids that start with `prefix`, at most `limit` of them.
    pub fn ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>, CatalogError> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare("SELECT id FROM documents WHERE id LIKE ?1 ORDER BY id LIMIT ?2")
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(
                params![format!("{}%", prefix.to_ascii_lowercase()), limit as i64],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))
    }

    /// All documents, ordered by title (then path).
    pub fn list(&self) -> Result<Vec<DocumentRecord>, CatalogError> {
        self.select("1 = 1 ORDER BY lower(coalesce(title, path)), path", [])
    }

    /// Documents with the given status.
    pub fn with_status(&self, status: Status) -> Result<Vec<DocumentRecord>, CatalogError> {
        self.select("status = ?1 ORDER BY path", [status.name()])
    }

    /// Documents last ingested from `path`.
    pub fn at_path(&self, path: &Path) -> Result<Vec<DocumentRecord>, CatalogError> {
        self.select("path = ?1", [path.to_string_lossy().into_owned()])
    }

    fn select<P: rusqlite::Params>(
        &self,
        condition: &str,
        params: P,
    ) -> Result<Vec<DocumentRecord>, CatalogError> {
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM documents WHERE {condition}"
            ))
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map(params, record)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Deletes a document's record; true if there was one.
    pub fn delete(&self, id: &str) -> Result<bool, CatalogError> {
        self.conn
            .execute("DELETE FROM documents WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }
}

fn record(row: &Row) -> rusqlite::Result<DocumentRecord> {
    let count = |i: usize| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok(DocumentRecord {
        id: row.get(0)?,
        path: PathBuf::from(row.get::<_, String>(1)?),
        format: row
            .get::<_, Option<String>>(2)?
            .as_deref()
            .and_then(Format::from_name),
        title: row.get(3)?,
        author: row.get(4)?,
        language: row.get(5)?,
        status: Status::from_name(&row.get::<_, String>(6)?),
        bytes: count(7)?,
        pages: count(8)?,
        chapters: count(9)?,
        passages: count(10)?,
        words: count(11)?,
        error: row.get(12)?,
        added_at: row.get(13)?,
        updated_at: row.get(14)?,
    })
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
