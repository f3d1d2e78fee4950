//! Session snapshots: one versioned, checksummed file holding a session's memories (one
//! [`memmamba::MemoryState`] per document), its Q&A history, and the identity of the model
//! that made them. Its size does not depend on the documents' length: the texts are not in
//! it (documents are identified by the BLAKE3 of their file, so the same books ingested
//! elsewhere match). Layout (all integers little-endian; docs/FORMATS.md, "Session snapshots"):
//!
//! ```text
//! 0       8 bytes   magic "MEMRSNAP"
//! 8       u32       format version (1)
//! 12      u32       flags (0)
//! 16      u64       total file length in bytes
//! 24      u64       manifest length M
//! 32      M bytes   manifest (JSON, see Manifest)
//! 32+M    ...       the memory states, each at the offset and length its manifest entry gives
//! end-32  32 bytes  BLAKE3 of every byte before it
//! ```
//!
//! A snapshot is untrusted input: its sizes are checked against the file and against limits
//! before anything is allocated from them, and every state is validated against the loaded
//! model's configuration before the library is touched.

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::Device;
use memmamba::MemoryState;
use serde::{Deserialize, Serialize};

use crate::error::{io, write_atomic, Error, Result};
use crate::library::Library;
use crate::memory::{self, MemoryInfo, MEMORY_FORMAT_VERSION};
use crate::model::Model;
use crate::session::{self, HistoryEntry, Session};

/// The first 8 bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"MEMRSNAP";
/// The snapshot format version this build writes (and the newest it reads).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// The largest snapshot file accepted.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// The largest manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

const HEADER: usize = 32;
const CHECKSUM: usize = 32;

/// Why a snapshot cannot be written or read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: not a MemReader snapshot (it does not start with \"MEMRSNAP\")", path.display())]
    NotASnapshot { path: PathBuf },
    #[error("{}: the snapshot is truncated: the file has {actual} of its {expected} bytes", path.display())]
    Truncated {
        path: PathBuf,
        actual: u64,
        expected: u64,
    },
    #[error("{}: the snapshot is damaged: {reason}", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "{}: the snapshot was made by a newer MemReader (snapshot format version {found}; this \
         one reads versions up to {SNAPSHOT_FORMAT_VERSION}): update MemReader to import it",
        path.display()
    )]
    NewerVersion { path: PathBuf, found: u32 },
    #[error(
        "{}: the snapshot was made with different model weights (blake3 {found}); the loaded \
         model ({model_dir}) has weights {expected}: import it with the model it was made with",
        path.display(), model_dir = model_dir.display()
    )]
    OtherWeights {
        path: PathBuf,
        model_dir: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "{}: the snapshot was made with a different tokenizer (blake3 {found}; the loaded \
         one is {expected})",
        path.display()
    )]
    OtherTokenizer {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: the file is too large for a snapshot ({bytes} bytes; the most is {MAX_SNAPSHOT_BYTES})", path.display())]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error(
        "session {session:?} has no documents read into memory: read one with \
         `memreader read --session {session} DOC`"
    )]
    Empty { session: String },
}

/// The model a snapshot was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub weights_blake3: String,
    pub tokenizer_blake3: String,
    pub config_fingerprint: String,
}

/// One document's memory in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDocument {
    /// The document's id: BLAKE3 of its file.
    pub id: String,
    pub title: String,
    pub tokens_read: u64,
    pub total_tokens: u64,
    pub target_tokens: u64,
    /// Where its state is, from the end of the manifest, and the BLAKE3 of those bytes.
    pub offset: u64,
    pub length: u64,
    pub blake3: String,
}

/// The manifest of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always "memreader-snapshot".
    pub format: String,
    pub format_version: u32,
    pub memreader_version: String,
    /// Unix seconds.
    pub created_at: i64,
    pub session: String,
    pub model: ModelIdentity,
    pub documents: Vec<SnapshotDocument>,
    pub history: Vec<HistoryEntry>,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub session: String,
    pub documents: Vec<SnapshotDocument>,
    pub questions: usize,
}

/// A document restored by [`import`].
#[derive(Debug, Clone, Serialize)]
pub struct ImportedDocument {
    pub id: String,
    pub title: String,
    pub tokens_read: u64,
    /// Whether the library has the document (else ingest its file to ask about it).
    pub in_library: bool,
}

/// What [`import`] restored.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub session: String,
    pub documents: Vec<ImportedDocument>,
    pub questions: usize,
}

fn identity(model: &Model) -> ModelIdentity {
    ModelIdentity {
        weights_blake3: model.weights_blake3().to_owned(),
        tokenizer_blake3: model.tokenizer_blake3().to_owned(),
        config_fingerprint: model.config().fingerprint(),
    }
}

/// Writes session `session`'s memories and history to `path` (atomically).
pub fn export(
    library: &Library,
    model: &Model,
    session_name: &str,
    path: &Path,
) -> Result<ExportReport> {
    let session = session::load(library, session_name)?;
    let mut blobs: Vec<u8> = Vec::new();
    let mut documents = Vec::new();
    for id in &session.documents {
        let Some(info) = memory::info(library, id)? else {
            continue;
        };
        let state_path = memory::state_path(library, id);
        // validates the state and its weights before it goes into the file
        let memory = memory::load(library, model, id)?;
        let bytes = std::fs::read(&state_path).map_err(io(&state_path))?;
        documents.push(SnapshotDocument {
            id: id.clone(),
            title: info.title.clone(),
            tokens_read: memory.state.tokens_read(),
            total_tokens: info.total_tokens,
            target_tokens: info.target_tokens,
            offset: blobs.len() as u64,
            length: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
        });
        blobs.extend_from_slice(&bytes);
    }
    if documents.is_empty() {
        return Err(SnapshotError::Empty {
            session: session.name,
        }
        .into());
    }
    let manifest = Manifest {
        format: "memreader-snapshot".to_owned(),
        format_version: SNAPSHOT_FORMAT_VERSION,
        memreader_version: crate::version().to_owned(),
        created_at: session::now(),
        session: session.name.clone(),
        model: identity(model),
        documents: documents.clone(),
        history: session.history.clone(),
    };
    let manifest_json = serde_json::to_vec(&manifest).map_err(|e| Error::BadFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let out = container(&manifest_json, &blobs);
    remove_stale_temporaries(path);
    write_atomic(path, &out)?;
    Ok(ExportReport {
        path: path.to_owned(),
        bytes: out.len() as u64,
        session: session.name,
        documents,
        questions: manifest.history.len(),
    })
}

/// Removes what exports to `path` that were killed before their rename left: the temporary
/// files `.NAME.tmp-PID-N` (`write_atomic`'s) next to it that no process holds locked, each a
/// partial snapshot as large as a whole one. The OS drops a dead process's lock, so a file that
/// can be locked is stale. Best effort: a file that cannot be opened or removed stays. An
/// export to the same path that has created its file but not yet locked it loses the file and
/// fails with an error (two exports to one path at the same instant; nothing is lost).
fn remove_stale_temporaries(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let numbers = [pid, n]
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if !numbers {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(entry.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
            // Closed before the removal, which Windows refuses on an open file.
            drop(file);
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A snapshot file of the current format around `manifest` (JSON) and `states` (the states
/// region): header with their lengths, then the checksum. Nothing in them is checked (tests
/// and fuzzing build damaged snapshots with it).
pub fn container(manifest: &[u8], states: &[u8]) -> Vec<u8> {
    let total = (HEADER + manifest.len() + states.len() + CHECKSUM) as u64;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    out.extend_from_slice(manifest);
    out.extend_from_slice(states);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads and checks the snapshot at `path` (container, checksum, manifest, model identity)
/// and returns its manifest and bytes.
fn open(path: &Path, model: &Model) -> Result<(Manifest, Vec<u8>, usize)> {
    let damaged = |reason: String| SnapshotError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let len = std::fs::metadata(path).map_err(io(path))?.len();
    if len > MAX_SNAPSHOT_BYTES {
        return Err(SnapshotError::TooLarge {
            path: path.to_owned(),
            bytes: len,
        }
        .into());
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotASnapshot {
            path: path.to_owned(),
        }
        .into());
    }
    if bytes.len() < HEADER {
        return Err(SnapshotError::Truncated {
            path: path.to_owned(),
            actual: bytes.len() as u64,
            expected: (HEADER + CHECKSUM) as u64,
        }
        .into());
    }
    let version = le_u32(&bytes[8..12]);
    if version > SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotError::NewerVersion {
            path: path.to_owned(),
            found: version,
        }
        .into());
    }
    if version == 0 {
        return Err(damaged("format version 0".to_owned()).into());
    }
    let total = le_u64(&bytes[16..24]);
    let actual = bytes.len() as u64;
    if actual < total {
        return Err(SnapshotError::Truncated {
            path: path.to_owned(),
            actual,
            expected: total,
        }
        .into());
    }
    if actual > total {
        return Err(damaged(format!(
            "{} bytes after the end the header gives ({total} bytes)",
            actual - total
        ))
        .into());
    }
    if total < (HEADER + CHECKSUM) as u64 {
        return Err(damaged(format!("a length of {total} bytes is too short")).into());
    }
    let body = bytes.len() - CHECKSUM;
    if blake3::hash(&bytes[..body]).as_bytes() != &bytes[body..] {
        return Err(damaged(
            "the checksum does not match its content (the file was changed or corrupted)"
                .to_owned(),
        )
        .into());
    }
    let flags = le_u32(&bytes[12..16]);
    if flags != 0 {
        return Err(damaged(format!("unknown flags {flags:#x}")).into());
    }
    let manifest_len = le_u64(&bytes[24..32]);
    if manifest_len > MAX_MANIFEST_BYTES || manifest_len > (body - HEADER) as u64 {
        return Err(damaged(format!(
            "a manifest of {manifest_len} bytes does not fit the file"
        ))
        .into());
    }
    let manifest_end = HEADER + manifest_len as usize;
    let manifest: Manifest = serde_json::from_slice(&bytes[HEADER..manifest_end])
        .map_err(|e| damaged(format!("the manifest is not valid: {e}")))?;
    if manifest.format != "memreader-snapshot" || manifest.format_version != version {
        return Err(damaged(format!(
            "the manifest says {:?} version {}, the header version {version}",
            manifest.format, manifest.format_version
        ))
        .into());
    }
    let ours = identity(model);
    if manifest.model.weights_blake3 != ours.weights_blake3 {
        return Err(SnapshotError::OtherWeights {
            path: path.to_owned(),
            model_dir: model.dir().to_owned(),
            expected: ours.weights_blake3,
            found: manifest.model.weights_blake3,
        }
        .into());
    }
    if manifest.model.tokenizer_blake3 != ours.tokenizer_blake3 {
        return Err(SnapshotError::OtherTokenizer {
            path: path.to_owned(),
            expected: ours.tokenizer_blake3,
            found: manifest.model.tokenizer_blake3,
        }
        .into());
    }
    Ok((manifest, bytes, manifest_end))
}

/// Checks the manifest's documents as a whole: each id a document id (64 lower-case hex
/// digits), no id twice, and no two states sharing bytes. So the states checked and written
/// add up to at most the file's size: a small manifest cannot make import hash, parse and
/// write one state over and over (a 64 MiB manifest listing one 300 KiB state 300 000 times
/// was 90 GB of work and of writes to the library).
fn check_documents(path: &Path, documents: &[SnapshotDocument]) -> Result<()> {
    let damaged = |reason: String| SnapshotError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let mut ids = std::collections::HashSet::new();
    for doc in documents {
        let hex = doc
            .id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if doc.id.len() != 64 || !hex {
            return Err(damaged(format!("{:?} is not a document id", doc.id)).into());
        }
        if !ids.insert(doc.id.as_str()) {
            return Err(damaged(format!("the document {} is listed twice", doc.id)).into());
        }
    }
    let mut regions: Vec<&SnapshotDocument> = documents.iter().collect();
    regions.sort_by_key(|d| (d.offset, d.length));
    for pair in regions.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.offset.saturating_add(a.length) > b.offset {
            return Err(damaged(format!(
                "the memories of {} and {} overlap ({} bytes at {}, {} bytes at {})",
                a.id, b.id, a.length, a.offset, b.length, b.offset
            ))
            .into());
        }
    }
    Ok(())
}

/// The bytes of a document's state inside the snapshot, checked.
fn state_bytes<'b>(
    path: &Path,
    bytes: &'b [u8],
    blobs: Range<usize>,
    doc: &SnapshotDocument,
) -> Result<&'b [u8]> {
    let damaged = |reason: String| SnapshotError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let region = (blobs.end - blobs.start) as u64;
    let fits = doc
        .offset
        .checked_add(doc.length)
        .is_some_and(|end| end <= region);
    if !fits {
        return Err(damaged(format!(
            "the memory of {} ({} bytes at {}) lies outside the file",
            doc.id, doc.length, doc.offset
        ))
        .into());
    }
    let start = blobs.start + doc.offset as usize;
    let slice = &bytes[start..start + doc.length as usize];
    if blake3::hash(slice).to_hex().as_str() != doc.blake3 {
        return Err(damaged(format!("the memory of {} does not match its hash", doc.id)).into());
    }
    Ok(slice)
}

/// Restores the snapshot at `path` into the library: each document's memory (whether or not
/// the library has the document yet) and the session's documents and history, under
/// `session_name` or else the session name it was exported from. Nothing is written unless
/// the whole snapshot is valid for `model`.
pub fn import(
    library: &Library,
    model: &Model,
    path: &Path,
    session_name: Option<&str>,
) -> Result<ImportReport> {
    let (manifest, bytes, manifest_end) = open(path, model)?;
    let name = match session_name {
        Some(name) => name.to_owned(),
        None => {
            if session::check_name(&manifest.session).is_err() {
                return Err(SnapshotError::Damaged {
                    path: path.to_owned(),
                    reason: format!("its session name {:?} is not valid", manifest.session),
                }
                .into());
            }
            manifest.session.clone()
        }
    };
    session::check_name(&name)?;
    let blobs = manifest_end..bytes.len() - CHECKSUM;
    check_documents(path, &manifest.documents)?;
    let mut states = Vec::new();
    for doc in &manifest.documents {
        let slice = state_bytes(path, &bytes, blobs.clone(), doc)?;
        let state = MemoryState::from_bytes(model.config(), slice, &Device::Cpu).map_err(|e| {
            SnapshotError::Damaged {
                path: path.to_owned(),
                reason: format!("the memory of {}: {e}", doc.id),
            }
        })?;
        if state.tokens_read() != doc.tokens_read {
            return Err(SnapshotError::Damaged {
                path: path.to_owned(),
                reason: format!(
                    "the memory of {} has read {} tokens, the manifest says {}",
                    doc.id,
                    state.tokens_read(),
                    doc.tokens_read
                ),
            }
            .into());
        }
        states.push(slice);
    }
    let mut documents = Vec::new();
    let mut ids = Vec::new();
    for (doc, slice) in manifest.documents.iter().zip(states) {
        let info = MemoryInfo {
            format_version: MEMORY_FORMAT_VERSION,
            doc_id: doc.id.clone(),
            title: doc.title.clone(),
            weights_blake3: manifest.model.weights_blake3.clone(),
            tokenizer_blake3: manifest.model.tokenizer_blake3.clone(),
            config_fingerprint: manifest.model.config_fingerprint.clone(),
            tokens_read: doc.tokens_read,
            total_tokens: doc.total_tokens,
            target_tokens: doc.target_tokens,
            seconds: 0.0,
            updated_at: 0,
        };
        memory::store_bytes(library, &doc.id, slice, doc.tokens_read, &info)?;
        documents.push(ImportedDocument {
            id: doc.id.clone(),
            title: doc.title.clone(),
            tokens_read: doc.tokens_read,
            in_library: library.document(&doc.id).is_ok(),
        });
        ids.push(doc.id.clone());
    }
    session::replace(
        library,
        &Session {
            format_version: session::SESSION_FORMAT_VERSION,
            name: name.clone(),
            documents: ids,
            history: manifest.history.clone(),
        },
    )?;
    Ok(ImportReport {
        session: name,
        documents,
        questions: manifest.history.len(),
    })
}
