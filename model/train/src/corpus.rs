//! The public-domain book corpus of `../shared/corpus`: `MANIFEST.tsv` (id, title, author,
//! source, license, chars, sha256, split) and one zstd-compressed UTF-8 file per book.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::TrainError;

/// Which part of the corpus a book belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Dev,
}

/// One row of the manifest.
#[derive(Debug, Clone)]
pub struct CorpusBook {
    pub id: String,
    pub title: String,
    pub author: String,
    pub chars: usize,
    pub split: Split,
    pub path: PathBuf,
}

impl CorpusBook {
    /// Decompresses the book's text.
    pub fn read_text(&self) -> Result<String, TrainError> {
        let file = std::fs::File::open(&self.path).map_err(|e| TrainError::io(&self.path, e))?;
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(std::io::BufReader::new(file))
            .map_err(|e| TrainError::format(&self.path, format!("not a zstd stream: {e}")))?;
        let mut bytes = Vec::with_capacity(self.chars + self.chars / 8);
        decoder
            .read_to_end(&mut bytes)
            .map_err(|e| TrainError::format(&self.path, format!("corrupt zstd data: {e}")))?;
        String::from_utf8(bytes)
            .map_err(|e| TrainError::format(&self.path, format!("not UTF-8: {e}")))
    }
}

/// Reads `dir/MANIFEST.tsv` and finds each book's file in `dir/books/`.
pub fn read_manifest(dir: &Path) -> Result<Vec<CorpusBook>, TrainError> {
    let manifest = dir.join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&manifest).map_err(|e| TrainError::io(&manifest, e))?;
    let files: Vec<String> = {
        let books = dir.join("books");
        let entries = std::fs::read_dir(&books).map_err(|e| TrainError::io(&books, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrainError::io(&books, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names
    };
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let row = number + 1;
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 8 {
            return Err(TrainError::format(
                &manifest,
                format!(
                    "line {row}: expected 8 tab-separated columns, found {}",
                    cols.len()
                ),
            ));
        }
        let split = match cols[7] {
            "train" => Split::Train,
            "dev" => Split::Dev,
            other => {
                return Err(TrainError::format(
                    &manifest,
                    format!("line {row}: unknown split {other:?}"),
                ))
            }
        };
        let chars = cols[5].parse().map_err(|_| {
            TrainError::format(
                &manifest,
                format!("line {row}: bad char count {:?}", cols[5]),
            )
        })?;
        let prefix = format!("{}-", cols[0]);
        let file = files
            .iter()
            .find(|name| name.starts_with(&prefix) && name.ends_with(".txt.zst"))
            .ok_or_else(|| {
                TrainError::format(&manifest, format!("line {row}: no books/{prefix}*.txt.zst"))
            })?;
        out.push(CorpusBook {
            id: cols[0].to_string(),
            title: cols[1].to_string(),
            author: cols[2].to_string(),
            chars,
            split,
            path: dir.join("books").join(file),
        });
    }
    Ok(out)
}
