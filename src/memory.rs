//! Reading a document into memory: its tokens stream through MemMamba in blocks, and the final
//! [`MemoryState`] is saved as the document's memory in the library directory:
//!
//! ```text
//! DIR/memories/ID.state     the MemoryState (memmamba's safetensors state file)
//! DIR/memories/ID.json      MemoryInfo: model hashes, tokens read of how many, timing
//! DIR/memories/ID.offsets   the char offset in the text where each token starts (u32 LE)
//! ```
//!
//! The state is saved every [`ReadOptions::checkpoint_tokens`] tokens and when reading is
//! stopped, each time atomically (temporary file + rename), so reading the document again
//! resumes from the last checkpoint. The offsets map a note's source position (a token index)
//! back to a char position in the text, and so to a passage.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use memmamba::MemoryState;
use serde::{Deserialize, Serialize};

use crate::error::{io, write_atomic, Error, Result};
use crate::library::{Document, Library, Status};
use crate::model::Model;

/// Version of `memories/ID.json` and the files beside it.
pub const MEMORY_FORMAT_VERSION: u32 = 1;

/// What is known about a document's memory, stored as `memories/ID.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    pub format_version: u32,
    pub doc_id: String,
    pub title: String,
    /// BLAKE3 of the weights and tokenizer files of the model that read it.
    pub weights_blake3: String,
    pub tokenizer_blake3: String,
    pub config_fingerprint: String,
    /// Tokens read into the state so far (the state's own count).
    pub tokens_read: u64,
    /// Tokens of the whole document.
    pub total_tokens: u64,
    /// Where reading stops: `total_tokens`, or less when a prefix was asked for.
    pub target_tokens: u64,
    /// Seconds spent reading so far, over all sittings.
    pub seconds: f64,
    /// Unix seconds of the last save.
    pub updated_at: i64,
}

impl MemoryInfo {
    /// Whether reading reached its target.
    pub fn complete(&self) -> bool {
        self.tokens_read >= self.target_tokens
    }
}

/// A document's memory, loaded.
#[derive(Debug, Clone)]
pub struct Memory {
    pub info: MemoryInfo,
    pub state: MemoryState,
}

/// The directory of memories in a library.
pub fn memories_dir(library: &Library) -> PathBuf {
    library.dir().join("memories")
}

fn path_of(library: &Library, id: &str, ext: &str) -> PathBuf {
    memories_dir(library).join(format!("{id}.{ext}"))
}

/// The state file of document `id` (a full id).
pub fn state_path(library: &Library, id: &str) -> PathBuf {
    path_of(library, id, "state")
}

fn info_path(library: &Library, id: &str) -> PathBuf {
    path_of(library, id, "json")
}

fn offsets_path(library: &Library, id: &str) -> PathBuf {
    path_of(library, id, "offsets")
}

/// The memory info of document `id` (a full id), if it has a memory.
pub fn info(library: &Library, id: &str) -> Result<Option<MemoryInfo>> {
    let path = info_path(library, id);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let info: MemoryInfo = serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if info.format_version > MEMORY_FORMAT_VERSION {
        return Err(Error::BadFile {
            path,
            message: format!(
                "memory format version {} is newer than this MemReader's {MEMORY_FORMAT_VERSION}",
                info.format_version
            ),
        });
    }
    Ok(Some(info))
}

/// Loads the memory of document `id` (an id or a unique prefix) for `model`. A document that
/// was never read is [`Error::NotRead`], and so is one whose memory a reading from the start
/// removes meanwhile; one read by other weights [`Error::OtherWeights`].
pub fn load(library: &Library, model: &Model, id: &str) -> Result<Memory> {
    let record = library.document(id)?;
    let not_read = || Error::NotRead {
        id: record.id.clone(),
        title: record.display_title(),
    };
    let Some(mut info) = info(library, &record.id)? else {
        return Err(not_read());
    };
    let path = state_path(library, &record.id);
    if info.weights_blake3 != model.weights_blake3() {
        return Err(Error::OtherWeights {
            path,
            expected: model.weights_blake3().to_owned(),
            found: info.weights_blake3,
        });
    }
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_read()),
        read => read.map_err(io(&path))?,
    };
    let state = MemoryState::from_bytes(model.config(), &bytes, model.device()).map_err(|e| {
        Error::BadFile {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    info.tokens_read = state.tokens_read();
    Ok(Memory { info, state })
}

/// Stores `state` as the memory of document `id` with `info` (whose `tokens_read` is taken
/// from the state): the state first, then the info, each atomically.
pub fn store(library: &Library, id: &str, state: &MemoryState, info: &MemoryInfo) -> Result<()> {
    let path = state_path(library, id);
    let bytes = state.to_bytes().map_err(|e| Error::BadFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    store_bytes(library, id, &bytes, state.tokens_read(), info)
}

/// Stores the bytes of a saved state (already validated) as the memory of `id`.
pub(crate) fn store_bytes(
    library: &Library,
    id: &str,
    state_bytes: &[u8],
    tokens_read: u64,
    info: &MemoryInfo,
) -> Result<()> {
    write_atomic(&state_path(library, id), state_bytes)?;
    let info = MemoryInfo {
        tokens_read,
        updated_at: crate::session::now(),
        ..info.clone()
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::BadFile {
        path: info_path(library, id),
        message: e.to_string(),
    })?;
    write_atomic(&info_path(library, id), &json)
}

/// Deletes the memory of document `id` (a full id), if any.
pub fn forget(library: &Library, id: &str) -> Result<()> {
    for path in [
        info_path(library, id),
        state_path(library, id),
        offsets_path(library, id),
    ] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
            _ => {}
        }
    }
    Ok(())
}

/// The char offset where each token of document `id` starts, for `model`'s tokenizer: from
/// `memories/ID.offsets`, else computed from the text (and saved).
pub fn token_offsets(
    library: &Library,
    model: &Model,
    id: &str,
    doc: &Document,
) -> Result<Vec<u32>> {
    let path = offsets_path(library, id);
    let expected = info(library, id)?
        .filter(|i| i.tokenizer_blake3 == model.tokenizer_blake3())
        .map(|i| i.total_tokens);
    if let (Some(total), Ok(bytes)) = (expected, std::fs::read(&path)) {
        if bytes.len() as u64 == total * 4 {
            return Ok(bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect());
        }
    }
    let (_, starts) = model.encode_document(&doc.text)?;
    save_offsets(&path, &starts)?;
    Ok(starts)
}

fn save_offsets(path: &Path, starts: &[u32]) -> Result<()> {
    let bytes: Vec<u8> = starts.iter().flat_map(|s| s.to_le_bytes()).collect();
    write_atomic(path, &bytes)
}

/// How to read a document.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Read at most this many tokens from the start (a prefix), e.g. for a quick demo.
    pub max_tokens: Option<u64>,
    /// Save the state every this many tokens, so a stopped reading resumes near where it was.
    pub checkpoint_tokens: u64,
    /// Start from the beginning even when a memory or a half-read one exists.
    pub restart: bool,
    /// Set to stop reading (the state so far is saved; reading again resumes).
    pub cancel: Arc<AtomicBool>,
    /// The session the document joins (see [`crate::session`]).
    pub session: String,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            max_tokens: None,
            checkpoint_tokens: 64 * 1024,
            restart: false,
            cancel: Arc::new(AtomicBool::new(false)),
            session: crate::session::DEFAULT_SESSION.to_owned(),
        }
    }
}

/// Where a reading is, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct ReadProgress {
    /// Tokens read, counting those read before a resume.
    pub done: u64,
    /// Tokens it will have read at the end.
    pub target: u64,
    /// Where this sitting started.
    pub resumed_from: u64,
}

/// What [`read`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ReadReport {
    pub doc_id: String,
    pub title: String,
    pub tokens_read: u64,
    pub total_tokens: u64,
    /// Tokens read before this sitting (a resumed reading), else 0.
    pub resumed_from: u64,
    /// Seconds this sitting took, and its speed.
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// The memory already covered what was asked: nothing was read.
    pub up_to_date: bool,
    /// Stopped through [`ReadOptions::cancel`]; the state so far is saved.
    pub cancelled: bool,
    /// Why an existing memory was not continued (made by other weights), if so.
    pub restarted: Option<String>,
    /// Bytes of the saved memory state.
    pub memory_bytes: u64,
}

/// Reads document `id` (an id or unique prefix of a ready document) into memory with `model`,
/// resuming a half-read memory made by the same model; `progress` is called after each block.
pub fn read(
    library: &Library,
    model: &Model,
    id: &str,
    options: &ReadOptions,
    progress: &mut dyn FnMut(&ReadProgress),
) -> Result<ReadReport> {
    let record = library.document(id)?;
    let id = record.id.clone();
    if record.status != Status::Ready {
        return Err(Error::NotReady {
            title: record.display_title(),
            id,
            status: record.status.name(),
        });
    }
    let title = record.display_title();
    crate::session::add_documents(library, &options.session, std::slice::from_ref(&id))?;
    let doc = library.text(&id)?;
    let (ids, starts) = model.encode_document(&doc.text)?;
    let total = ids.len() as u64;
    let target = options.max_tokens.map_or(total, |m| m.min(total));
    let previous = if options.restart {
        None
    } else {
        info(library, &id)?
    };
    let mut restarted = None;
    let mut seconds_before = 0.0;
    let mut state = match previous {
        Some(prev)
            if prev.weights_blake3 == model.weights_blake3()
                && prev.tokenizer_blake3 == model.tokenizer_blake3()
                && prev.total_tokens == total =>
        {
            seconds_before = prev.seconds;
            load(library, model, &id)?.state
        }
        Some(prev) => {
            restarted = Some(format!(
                "the memory on disk was made by other model weights or tokenizer (weights blake3 \
                 {}); reading from the start",
                &prev.weights_blake3[..prev.weights_blake3.len().min(12)]
            ));
            forget(library, &id)?;
            model.new_state()?
        }
        None => {
            forget(library, &id)?;
            model.new_state()?
        }
    };
    save_offsets(&offsets_path(library, &id), &starts)?;
    let resumed_from = state.tokens_read();
    let mut info = MemoryInfo {
        format_version: MEMORY_FORMAT_VERSION,
        doc_id: id.clone(),
        title: title.clone(),
        weights_blake3: model.weights_blake3().to_owned(),
        tokenizer_blake3: model.tokenizer_blake3().to_owned(),
        config_fingerprint: model.config().fingerprint(),
        tokens_read: resumed_from,
        total_tokens: total,
        target_tokens: target.max(resumed_from),
        seconds: seconds_before,
        updated_at: crate::session::now(),
    };
    let started = Instant::now();
    let mut saved_at = resumed_from;
    let mut cancelled = false;
    let up_to_date = resumed_from >= target && self::info(library, &id)?.is_some();
    progress(&ReadProgress {
        done: resumed_from,
        target: info.target_tokens,
        resumed_from,
    });
    let mut at = resumed_from as usize;
    while at < target as usize {
        if options.cancel.load(Ordering::SeqCst) {
            cancelled = true;
            break;
        }
        // one progress step: the model's block for its device (32,768 tokens on a GPU, where
        // pieces of the CPU's 512 made reading launch-bound)
        let n = model.net().read_block().min(target as usize - at);
        let tokens = Tensor::new(&ids[at..at + n], model.device())?.unsqueeze(0)?;
        model.net().read(&mut state, &tokens)?;
        at += n;
        progress(&ReadProgress {
            done: at as u64,
            target,
            resumed_from,
        });
        if at as u64 - saved_at >= options.checkpoint_tokens && (at as u64) < target {
            info.seconds = seconds_before + started.elapsed().as_secs_f64();
            store(library, &id, &state, &info)?;
            saved_at = at as u64;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if !up_to_date {
        info.seconds = seconds_before + seconds;
        store(library, &id, &state, &info)?;
    }
    let read_now = state.tokens_read() - resumed_from;
    Ok(ReadReport {
        doc_id: id.clone(),
        title,
        tokens_read: state.tokens_read(),
        total_tokens: total,
        resumed_from,
        seconds,
        tokens_per_second: read_now as f64 / seconds.max(1e-9),
        up_to_date,
        cancelled,
        restarted,
        memory_bytes: std::fs::metadata(state_path(library, &id))
            .map(|m| m.len())
            .unwrap_or(0),
    })
}
