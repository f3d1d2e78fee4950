//! The search index: one tantivy document per passage, BM25 over its text (English stemming,
//! positions kept for phrase queries and highlighting), stored fields for citations. See
//! docs/FORMATS.md, "Library directory".

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{doc, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::document::{CharIndex, Document};
use crate::passage::Passage;

/// Memory for the index writer's buffers.
const WRITER_MEMORY: usize = 64 << 20;
/// Snippets are cut to about this many bytes (tantivy counts bytes).
const SNIPPET_CHARS: usize = 240;

/// Why the index could not be opened, written or searched.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index {path}: {source}")]
    Tantivy {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error(
        "search index {path} is being written by another process (another `memreader ingest` \
         or `remove`?); try again when it has finished"
    )]
    Busy { path: PathBuf },
}

/// A search result: a passage, where it is, and a snippet with the matched terms marked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub doc_id: String,
    /// The document's title (else its file name), filled in from the catalog.
    pub title: String,
    pub passage_id: String,
    /// BM25 score; higher is better.
    pub score: f32,
    /// Page number, counted from 1, for documents with pages (PDF).
    pub page: Option<usize>,
    /// Chapter index, counted from 0, and its title.
    pub chapter: Option<usize>,
    pub chapter_title: Option<String>,
    /// The passage's char range in the document's text.
    pub range: Range<usize>,
    pub snippet: Snippet,
}

/// Part of a passage around the best-matching terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    pub text: String,
    /// The snippet's char range in the document's text.
    pub range: Range<usize>,
    /// Char ranges of the matched terms, in the document's text (within `range`).
    pub highlights: Vec<Range<usize>>,
}

impl Snippet {
    /// The snippet's text with each matched term between `open` and `close`.
    pub fn marked(&self, open: &str, close: &str) -> String {
        let chars = CharIndex::new(&self.text);
        let mut out = String::with_capacity(self.text.len() + 8 * self.highlights.len());
        let mut at = 0;
        for h in &self.highlights {
            let h = chars.bytes(h.start - self.range.start..h.end - self.range.start);
            out.push_str(&self.text[at..h.start]);
            out.push_str(open);
            out.push_str(&self.text[h.clone()]);
            out.push_str(close);
            at = h.end;
        }
        out.push_str(&self.text[at..]);
        out
    }
}

#[derive(Clone, Copy)]
struct Fields {
    passage_id: Field,
    doc_id: Field,
    text: Field,
    start: Field,
    end: Field,
    page: Field,
    chapter: Field,
    chapter_title: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        passage_id: builder.add_text_field("passage_id", STRING | STORED),
        doc_id: builder.add_text_field("doc_id", STRING | STORED),
        text: builder.add_text_field("text", text_options),
        start: builder.add_u64_field("start", STORED),
        end: builder.add_u64_field("end", STORED),
        page: builder.add_u64_field("page", STORED),
        chapter: builder.add_u64_field("chapter", STORED),
        chapter_title: builder.add_text_field("chapter_title", STORED),
    };
    (builder.build(), fields)
}

/// The passage index of a library.
pub struct Index {
    path: PathBuf,
    index: tantivy::Index,
    reader: IndexReader,
    fields: Fields,
}

/// The index's single writer: adds and deletes passages until [`IndexWriter::commit`].
pub struct Writer {
    path: PathBuf,
    writer: IndexWriter,
    fields: Fields,
}

impl Index {
    /// Opens (creating if needed) the index in the directory `path`.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let err = |source| IndexError::Tantivy {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(|e| err(e.into()))?;
        let directory = MmapDirectory::open(path).map_err(|e| err(e.into()))?;
        let (schema, fields) = schema();
        let index = tantivy::Index::open_or_create(directory, schema).map_err(err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err)?;
        Ok(Index {
            path: path.to_owned(),
            index,
            reader,
            fields,
        })
    }

    /// Takes the index's writer lock; fails with [`IndexError::Busy`] while another process
    /// holds it.
    pub fn writer(&self) -> Result<Writer, IndexError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        match self
            .index
            .writer_with_num_threads(threads, WRITER_MEMORY.max((threads * 16) << 20))
        {
            Ok(writer) => Ok(Writer {
                path: self.path.clone(),
                writer,
                fields: self.fields,
            }),
            Err(tantivy::TantivyError::LockFailure(..)) => Err(IndexError::Busy {
                path: self.path.clone(),
            }),
            Err(source) => Err(IndexError::Tantivy {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn err(&self, source: tantivy::TantivyError) -> IndexError {
        IndexError::Tantivy {
            path: self.path.clone(),
            source,
        }
    }

    /// BM25 search over passages, best first, optionally only in the documents `docs`. Query
    /// syntax is tantivy's (words, `"phrases"`, `+must`, `-not`); what does not parse is read
    /// as plain words. `title` gives a hit's title from its document id, or `None` to leave
    /// the hit out (no snippet is made for it): at most `limit` hits among the best
    /// `limit + 8` passages.
    pub fn search(
        &self,
        query: &str,
        docs: &[String],
        limit: usize,
        title: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.reader.reload().map_err(|e| self.err(e))?;
        let searcher = self.reader.searcher();
        let parser = QueryParser::for_index(&self.index, vec![self.fields.text]);
        let (text_query, _) = parser.parse_query_lenient(query);
        let query: Box<dyn Query> = if docs.is_empty() {
            text_query
        } else {
            let filter = docs
                .iter()
                .map(|id| -> (Occur, Box<dyn Query>) {
                    let term = Term::from_field_text(self.fields.doc_id, id);
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    )
                })
                .collect();
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, text_query),
                (Occur::Must, Box::new(BooleanQuery::new(filter))),
            ]))
        };
        let top = searcher
            .search(&*query, &TopDocs::with_limit(limit + 8).order_by_score())
            .map_err(|e| self.err(e))?;
        let mut snippets = SnippetGenerator::create(&searcher, &*query, self.fields.text)
            .map_err(|e| self.err(e))?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let f = self.fields;
        let mut hits = Vec::with_capacity(limit);
        for (score, address) in top {
            let stored: TantivyDocument = searcher.doc(address).map_err(|e| self.err(e))?;
            let text_of = |field| {
                stored
                    .get_first(field)
                    .and_then(|v| v.as_str().map(str::to_owned))
            };
            let doc_id = text_of(f.doc_id).unwrap_or_default();
            let Some(title) = title(&doc_id) else {
                continue;
            };
            let number = |field| stored.get_first(field).and_then(|v| v.as_u64());
            let text = text_of(f.text).unwrap_or_default();
            let start = number(f.start).unwrap_or(0) as usize;
            let snippet = snippets.snippet(&text);
            // tantivy gives byte offsets into the passage's text (the highlights from the
            // fragment's start); hits give char offsets into the document's.
            let chars = CharIndex::new(&text);
            let fragment = snippet.fragment_range();
            let in_document = |bytes: Range<usize>| {
                start + chars.char(bytes.start)..start + chars.char(bytes.end)
            };
            hits.push(Hit {
                doc_id,
                title,
                passage_id: text_of(f.passage_id).unwrap_or_default(),
                score,
                page: number(f.page).map(|p| p as usize + 1),
                chapter: number(f.chapter).map(|c| c as usize),
                chapter_title: text_of(f.chapter_title),
                range: start..number(f.end).map_or(start + chars.char(text.len()), |e| e as usize),
                snippet: Snippet {
                    text: snippet.fragment().to_owned(),
                    range: in_document(fragment.clone()),
                    highlights: tantivy::snippet::collapse_overlapped_ranges(snippet.highlighted())
                        .into_iter()
                        .map(|r| in_document(fragment.start + r.start..fragment.start + r.end))
                        .collect(),
                },
            });
            if hits.len() == limit {
                break;
            }
        }
        Ok(hits)
    }

    /// The number of passages of a document in the committed index.
    pub fn count(&self, doc_id: &str) -> Result<u64, IndexError> {
        self.reader.reload().map_err(|e| self.err(e))?;
        let query = TermQuery::new(
            Term::from_field_text(self.fields.doc_id, doc_id),
            IndexRecordOption::Basic,
        );
        self.reader
            .searcher()
            .search(&query, &tantivy::collector::Count)
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

impl Writer {
    fn err(&self, source: tantivy::TantivyError) -> IndexError {
        IndexError::Tantivy {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds a document's passages (uncommitted).
    pub fn add(&self, doc: &Document, passages: &[Passage]) -> Result<(), IndexError> {
        let f = self.fields;
        let chars = CharIndex::new(&doc.text);
        for passage in passages {
            let mut entry = doc!(
                f.passage_id => passage.id.as_str(),
                f.doc_id => passage.doc_id.as_str(),
                f.text => chars.slice(passage.range.clone()),
                f.start => passage.range.start as u64,
                f.end => passage.range.end as u64,
            );
            if let Some(page) = passage.page {
                entry.add_u64(f.page, page as u64);
            }
            if let Some(chapter) = passage.chapter {
                entry.add_u64(f.chapter, chapter as u64);
                if let Some(title) = doc.chapters.get(chapter).and_then(|c| c.title.as_deref()) {
                    entry.add_text(f.chapter_title, title);
                }
            }
            self.writer.add_document(entry).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Deletes every passage of a document (uncommitted).
    pub fn delete(&self, doc_id: &str) {
        self.writer
            .delete_term(Term::from_field_text(self.fields.doc_id, doc_id));
    }

    /// Makes the adds and deletes so far durable and visible to new searches.
    pub fn commit(&mut self) -> Result<(), IndexError> {
        self.writer.commit().map(drop).map_err(|e| self.err(e))
    }
}
