//! Opening a book from disk: read, parse and split into passages.

use std::path::{Path, PathBuf};

use ingest::{parse_text, split_passages, Document, Passage, TextError};

/// Why a book could not be opened; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{path}: cannot read the file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: TextError },
}

/// A parsed book and its passages.
#[derive(Debug)]
pub struct Book {
    pub path: PathBuf,
    pub document: Document,
    pub passages: Vec<Passage>,
}

impl Book {
    /// Reads and parses a plain-text book; its file stem is its id for now.
    pub fn open(path: &Path) -> Result<Book, BookError> {
        let bytes = std::fs::read(path).map_err(|source| BookError::Read {
            path: path.to_owned(),
            source,
        })?;
        let document = parse_text(&bytes).map_err(|source| BookError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let passages = split_passages(&document, &id);
        Ok(Book {
            path: path.to_owned(),
            document,
            passages,
        })
    }

    /// The title from the document's metadata, else the file name.
    pub fn title(&self) -> String {
        self.document.title.clone().unwrap_or_else(|| {
            self.path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }

    /// The number of words in the text.
    pub fn words(&self) -> usize {
        self.document.text.split_whitespace().count()
    }

    /// What a library view shows of the book (the desktop app's list of books).
    pub fn summary(&self) -> BookSummary {
        BookSummary {
            title: self.title(),
            author: self.document.author.clone(),
            file: self
                .path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            words: self.words(),
            chapters: self.document.chapters.len(),
            passages: self.passages.len(),
        }
    }
}

/// A book's title, author and size, as the app shows it in its list of books.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BookSummary {
    pub title: String,
    pub author: Option<String>,
    /// The file name, without its folder.
    pub file: String,
    pub words: usize,
    pub chapters: usize,
    pub passages: usize,
}

/// The bundled demo books (`assets/demo/*.txt`), sorted by name.
pub fn demo_book_paths(dir: &Path) -> Result<Vec<PathBuf>, BookError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BookError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    Ok(paths)
}
