//! What a document's memory holds: each layer's summary-pool notes with the source position of
//! the token that wrote them, mapped back to the text and its passage, and how the notes spread
//! over the document (`memreader notes DOC`).

use std::ops::Range;

use ingest::split_passages;
use serde::Serialize;

use crate::error::Result;
use crate::library::Library;
use crate::memory;
use crate::model::Model;
use crate::text::CharMap;

/// Chars of text shown from a note's source token on.
const EXCERPT_CHARS: usize = 60;

/// A note in a layer's summary pool.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// Absolute position of the token that wrote it.
    pub position: u64,
    /// Its importance score `s`.
    pub score: f32,
    /// `ln s`, by which the pool ranks notes (`s` rounds to 1.0 for a confident scorer).
    pub log_score: f32,
    /// The token's char offset in the text.
    pub char_offset: usize,
    /// The passage that holds it: char range, page (from 1), chapter (from 0).
    pub passage: Option<Range<usize>>,
    pub page: Option<usize>,
    pub chapter: Option<usize>,
    /// The text from the token on.
    pub excerpt: String,
}

/// One layer's notes, by position.
#[derive(Debug, Clone, Serialize)]
pub struct LayerNotes {
    pub layer: usize,
    /// Slots of the pool (notes held <= slots).
    pub slots: usize,
    pub notes: Vec<Note>,
}

/// The notes of a document's memory.
#[derive(Debug, Clone, Serialize)]
pub struct NotesReport {
    pub doc_id: String,
    pub title: String,
    pub tokens_read: u64,
    pub total_tokens: u64,
    pub layers: Vec<LayerNotes>,
    /// Notes of all layers per equal slice of the tokens read (`bin_tokens` tokens each).
    pub histogram: Vec<usize>,
    pub bin_tokens: u64,
}

/// The notes of document `id`'s memory, with a histogram of `bins` slices.
pub fn notes(library: &Library, model: &Model, id: &str, bins: usize) -> Result<NotesReport> {
    let id = library.resolve(id)?;
    let memory = memory::load(library, model, &id)?;
    let doc = library.text(&id)?;
    let map = CharMap::new(&doc.text);
    let offsets = memory::token_offsets(library, model, &id, &doc)?;
    let passages = split_passages(&doc, &id);
    let state = &memory.state;
    let read = state.tokens_read().max(1);
    let bins = bins.max(1);
    let bin_tokens = read.div_ceil(bins as u64).max(1);
    let mut histogram = vec![0; bins];
    let mut layers = Vec::new();
    for layer in 0..state.n_layer() {
        let Some(slots) = state.pool_slots(layer, 0) else {
            continue;
        };
        let mut notes: Vec<Note> = slots
            .iter()
            .filter(|s| s.valid)
            .map(|s| {
                let c = offsets
                    .get(s.position as usize)
                    .map_or(map.len_chars(), |&c| c as usize);
                let p = passages.iter().find(|p| p.range.end > c);
                Note {
                    position: s.position,
                    score: s.log_score.exp(),
                    log_score: s.log_score,
                    char_offset: c,
                    passage: p.map(|p| p.range.clone()),
                    page: p.and_then(|p| p.page).map(|n| n + 1),
                    chapter: p.and_then(|p| p.chapter),
                    excerpt: map
                        .slice(&doc.text, &(c..c + EXCERPT_CHARS))
                        .replace(['\n', '\r'], " "),
                }
            })
            .collect();
        notes.sort_by_key(|n| n.position);
        for n in &notes {
            let bin = ((n.position / bin_tokens) as usize).min(bins - 1);
            histogram[bin] += 1;
        }
        layers.push(LayerNotes {
            layer,
            slots: slots.len(),
            notes,
        });
    }
    Ok(NotesReport {
        doc_id: id,
        title: memory.info.title,
        tokens_read: state.tokens_read(),
        total_tokens: memory.info.total_tokens,
        layers,
        histogram,
        bin_tokens,
    })
}
