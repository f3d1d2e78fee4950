//! Sessions: a named set of documents (those read in it), their memories, and the questions
//! asked in it with their answers. Stored in the library directory:
//!
//! ```text
//! DIR/sessions/NAME.json            {"format_version": 1, "name": ..., "documents": [ids]}
//! DIR/sessions/NAME.history.jsonl   one HistoryEntry (JSON) per line, oldest first
//! ```
//!
//! The history is appended one line per write (`O_APPEND`), so concurrent asks in threads or
//! processes never lose or interleave entries; a torn last line (a crash mid-write) is skipped
//! when reading. The document list is rewritten atomically (temporary file + rename).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::ask::Answer;
use crate::error::{io, write_atomic, Error, Result};
use crate::library::Library;

/// The session used when none is named.
pub const DEFAULT_SESSION: &str = "default";

/// Version of the session files.
pub const SESSION_FORMAT_VERSION: u32 = 1;

/// A question asked in a session and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub asked_at: i64,
    /// The documents it was asked of (empty: the whole library).
    pub docs: Vec<String>,
    pub answer: Answer,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub format_version: u32,
    pub name: String,
    /// Full ids of the documents read in the session.
    pub documents: Vec<String>,
    #[serde(skip)]
    pub history: Vec<HistoryEntry>,
}

/// Checks a session name: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::SessionName(name.to_owned()))
    }
}

fn sessions_dir(library: &Library) -> PathBuf {
    library.dir().join("sessions")
}

fn file(library: &Library, name: &str) -> PathBuf {
    sessions_dir(library).join(format!("{name}.json"))
}

fn history_file(library: &Library, name: &str) -> PathBuf {
    sessions_dir(library).join(format!("{name}.history.jsonl"))
}

/// Serialises read-modify-write of session files within this process.
static LOCK: Mutex<()> = Mutex::new(());

/// The session `name` (empty if it was never used).
pub fn load(library: &Library, name: &str) -> Result<Session> {
    check_name(name)?;
    let path = file(library, name);
    let mut session = match std::fs::read(&path) {
        Ok(bytes) => {
            let s: Session = serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if s.format_version > SESSION_FORMAT_VERSION {
                return Err(Error::BadFile {
                    path,
                    message: format!(
                        "session format version {} is newer than this MemReader's \
                         {SESSION_FORMAT_VERSION}",
                        s.format_version
                    ),
                });
            }
            s
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Session {
            format_version: SESSION_FORMAT_VERSION,
            name: name.to_owned(),
            documents: Vec::new(),
            history: Vec::new(),
        },
        Err(e) => return Err(io(&path)(e)),
    };
    session.name = name.to_owned();
    let history = history_file(library, name);
    match std::fs::read_to_string(&history) {
        Ok(text) => {
            session.history = text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&history)(e)),
    }
    Ok(session)
}

/// Adds documents (full ids) to session `name`.
pub fn add_documents(library: &Library, name: &str, ids: &[String]) -> Result<()> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut session = load(library, name)?;
    let before = session.documents.len();
    for id in ids {
        if !session.documents.contains(id) {
            session.documents.push(id.clone());
        }
    }
    if session.documents.len() == before && file(library, name).exists() {
        return Ok(());
    }
    save_documents(library, &session)
}

fn save_documents(library: &Library, session: &Session) -> Result<()> {
    let path = file(library, &session.name);
    let json = serde_json::to_vec_pretty(session).map_err(|e| Error::BadFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&path, &json)
}

/// Appends a question and its answer to the history of session `name`.
pub fn record(library: &Library, name: &str, entry: &HistoryEntry) -> Result<()> {
    check_name(name)?;
    let path = history_file(library, name);
    let dir = sessions_dir(library);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut line = serde_json::to_vec(entry).map_err(|e| Error::BadFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    // one write of the whole line: appends of concurrent writers do not interleave
    f.write_all(&line).map_err(io(&path))
}

/// Replaces session `session.name` (its documents and history) by `session`, as a snapshot
/// import does.
pub fn replace(library: &Library, session: &Session) -> Result<()> {
    check_name(&session.name)?;
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut lines = Vec::new();
    for entry in &session.history {
        let path = history_file(library, &session.name);
        lines.extend(serde_json::to_vec(entry).map_err(|e| Error::BadFile {
            path,
            message: e.to_string(),
        })?);
        lines.push(b'\n');
    }
    write_atomic(&history_file(library, &session.name), &lines)?;
    save_documents(library, session)
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
