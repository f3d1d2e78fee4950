//! The corpus as one token stream: every book's tokens followed by the end-of-text marker,
//! stored as little-endian u16 (the vocabulary is under 65,536) beside a JSON list of books.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::corpus::CorpusBook;
use crate::tokenizer::BookTokenizer;
use crate::TrainError;

/// Where one book lies in the stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BookSpan {
    pub id: String,
    pub title: String,
    pub start: usize,
    pub len: usize,
}

/// A tokenized set of books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStore {
    pub tokens: Vec<u16>,
    pub books: Vec<BookSpan>,
}

fn index_path(tokens_path: &Path) -> PathBuf {
    tokens_path.with_extension("books.json")
}

impl TokenStore {
    /// Tokenizes `books` in order, calling `progress(done, total)` after each.
    pub fn encode(
        books: &[CorpusBook],
        tokenizer: &BookTokenizer,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self, TrainError> {
        let end = narrow(tokenizer.end_of_text())?;
        let mut store = TokenStore {
            tokens: Vec::new(),
            books: Vec::new(),
        };
        for (done, book) in books.iter().enumerate() {
            let ids = tokenizer.encode(&book.read_text()?)?;
            let start = store.tokens.len();
            for id in &ids {
                store.tokens.push(narrow(*id)?);
            }
            store.tokens.push(end);
            store.books.push(BookSpan {
                id: book.id.clone(),
                title: book.title.clone(),
                start,
                len: ids.len(),
            });
            progress(done + 1, books.len());
        }
        Ok(store)
    }

    /// Writes `path` (the tokens) and `path` with extension `books.json` (the books).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let bytes: Vec<u8> = self.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))?;
        let index = index_path(path);
        let json = serde_json::to_vec_pretty(&self.books)
            .map_err(|e| TrainError::format(&index, e.to_string()))?;
        std::fs::write(&index, json).map_err(|e| TrainError::io(&index, e))
    }

    /// Reads what [`TokenStore::save`] wrote, checking that the books lie inside the stream.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        if bytes.len() % 2 != 0 {
            return Err(TrainError::format(
                path,
                "odd byte count: not a u16 token stream",
            ));
        }
        let tokens = bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect::<Vec<_>>();
        let index = index_path(path);
        let json = std::fs::read(&index).map_err(|e| TrainError::io(&index, e))?;
        let books: Vec<BookSpan> =
            serde_json::from_slice(&json).map_err(|e| TrainError::format(&index, e.to_string()))?;
        if let Some(bad) = books.iter().find(|b| b.start + b.len > tokens.len()) {
            return Err(TrainError::format(
                &index,
                format!(
                    "book {} ends at token {} but the stream has {}",
                    bad.id,
                    bad.start + bad.len,
                    tokens.len()
                ),
            ));
        }
        Ok(TokenStore { tokens, books })
    }
}

fn narrow(id: u32) -> Result<u16, TrainError> {
    u16::try_from(id)
        .map_err(|_| TrainError::Tokenizer(format!("token id {id} does not fit in u16")))
}
