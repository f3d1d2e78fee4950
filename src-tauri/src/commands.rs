//! The commands the UI calls (`invoke` in ui/src/api.ts): thin wrappers over `memreader`; and
//! the ingestion of files dropped on the window (`on_window_event`). No command takes a path:
//! files come from a drop or a picker, both seen by Rust first.
//! Errors cross to the UI as their messages, which name the file and what is wrong. Anything
//! that touches the disk runs off the main thread (async commands, blocking work in
//! `spawn_blocking`), so the window never freezes.

use std::path::PathBuf;
use std::time::Duration;

use memmamba::device::{parse_device, DeviceChoice};
use memreader::library::{Document, DocumentRecord, Hit, Library, SearchOptions};
use serde::Serialize;
use tauri::{
    AppHandle, DragDropEvent, Emitter, Manager, State, WebviewWindow, Window, WindowEvent,
};
use tauri_plugin_dialog::{DialogExt, FilePath};

use crate::jobs::{self, IngestEvent, INGEST_EVENT};
use crate::state::AppState;

/// How often a running ingestion updates the window at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What the header shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    pub name: &'static str,
    /// The version of the `memreader` library the app is built on.
    pub version: &'static str,
}

#[tauri::command]
pub fn app_info() -> AppInfo {
    AppInfo {
        name: "MemReader",
        version: memreader::version(),
    }
}

/// Runs blocking work on a thread of its own, turning a panic into an error message.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|err| format!("the work stopped unexpectedly: {err}"))?
}

/// The library's documents (ready, failed and being indexed), by title.
#[tauri::command]
pub async fn documents(state: State<'_, AppState>) -> Result<Vec<DocumentRecord>, String> {
    let library = state.library()?;
    blocking(move || library.documents().map_err(|e| e.to_string())).await
}

/// A document's catalog record with its parsed text and structure (chapters, pages; char
/// ranges into the text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentText {
    pub record: DocumentRecord,
    pub document: Document,
}

#[tauri::command]
pub async fn document_text(state: State<'_, AppState>, id: String) -> Result<DocumentText, String> {
    let library = state.library()?;
    blocking(move || document_text_of(&library, &id)).await
}

fn document_text_of(library: &Library, id: &str) -> Result<DocumentText, String> {
    let record = library.document(id).map_err(|e| e.to_string())?;
    if let Some(error) = &record.error {
        return Err(format!("{}: {error}", record.path.display()));
    }
    let document = library.text(&record.id).map_err(|e| e.to_string())?;
    Ok(DocumentText { record, document })
}

/// Passage search over the ready documents (all, or those of `docs`); a blank query finds
/// nothing.
#[tauri::command]
pub async fn search(
    state: State<'_, AppState>,
    query: String,
    docs: Vec<String>,
    limit: usize,
) -> Result<Vec<Hit>, String> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    let library = state.library()?;
    blocking(move || {
        library
            .search(&query, &SearchOptions { docs, limit })
            .map_err(|e| e.to_string())
    })
    .await
}

/// Removes a document and returns the record it had.
#[tauri::command]
pub async fn remove_document(
    state: State<'_, AppState>,
    id: String,
) -> Result<DocumentRecord, String> {
    state
        .idle()
        .map_err(|why| format!("Documents cannot be removed now. {why}"))?;
    let library = state.library()?;
    blocking(move || library.remove(&id).map_err(|e| e.to_string())).await
}

/// Files and folders dropped on the window: the system hands their paths to Rust (a
/// `WindowEvent::DragDrop`), which ingests exactly them. The page only hears of the job through
/// `ingest` events (`refused` when it cannot start) and has no command that takes a path: what is
/// added is always what the user dropped or picked.
pub fn on_window_event(window: &Window, event: &WindowEvent) {
    let Some(paths) = dropped(event) else {
        return;
    };
    let app = window.app_handle();
    if let Err(why) = start_ingest(app, &app.state::<AppState>(), paths) {
        send(app, INGEST_EVENT, &refused(&why));
    }
}

/// The paths of what was dropped on the window, if `event` is a drop of at least one file or
/// folder (text or a link dragged from elsewhere has none).
fn dropped(event: &WindowEvent) -> Option<Vec<PathBuf>> {
    match event {
        WindowEvent::DragDrop(DragDropEvent::Drop { paths, .. }) if !paths.is_empty() => {
            Some(paths.clone())
        }
        _ => None,
    }
}

/// What the window is told when files dropped on it cannot be added (`why`: another job runs,
/// the library cannot be opened).
fn refused(why: &str) -> IngestEvent {
    IngestEvent::Refused {
        error: format!("The dropped files were not added. {why}"),
    }
}

/// Opens the native picker for files (or, with `folders`, folders) and ingests what the user
/// chose; `None` when the picker was cancelled.
#[tauri::command]
pub async fn pick_and_ingest(
    app: AppHandle,
    window: WebviewWindow,
    folders: bool,
) -> Result<Option<u64>, String> {
    // Refuse before the picker opens rather than after the user chose.
    let state = app.state::<AppState>();
    state.library()?;
    state.idle()?;
    let picker = app.dialog().file().set_parent(&window);
    let chosen = blocking(move || {
        Ok(if folders {
            picker
                .set_title("Add folders to the library")
                .blocking_pick_folders()
        } else {
            picker
                .set_title("Add documents to the library")
                .add_filter("Documents", &ingest::bulk::EXTENSIONS)
                .blocking_pick_files()
        })
    })
    .await?;
    let Some(chosen) = chosen else {
        return Ok(None);
    };
    let paths = chosen
        .into_iter()
        .map(FilePath::into_path)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("the picker gave a path that is not a file: {err}"))?;
    start_ingest(&app, &state, paths).map(Some)
}

fn start_ingest(app: &AppHandle, state: &AppState, paths: Vec<PathBuf>) -> Result<u64, String> {
    let library = state.library()?;
    let options = memreader::library::ingest_options().map_err(|e| e.to_string())?;
    let job = state.begin_job(options.cancel.clone(), "Files are being added")?;
    let app = app.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("ingest-{job}"))
        .spawn(move || {
            let mut emit = |event: IngestEvent| send(&app, INGEST_EVENT, &event);
            let finished = jobs::run(
                job,
                &library,
                &paths,
                &options,
                PROGRESS_INTERVAL,
                &mut emit,
            );
            // Free the job first, so that the window can start another as soon as it hears.
            app.state::<AppState>().end_job(job);
            send(&app, INGEST_EVENT, &finished);
        });
    if let Err(err) = spawned {
        state.end_job(job);
        return Err(format!("cannot start the ingestion: {err}"));
    }
    Ok(job)
}

/// Sends an event to the window.
pub fn send(app: &AppHandle, name: &str, event: &impl Serialize) {
    if let Err(err) = app.emit(name, event) {
        // The window is gone (the app is closing); nobody is left to tell but the terminal.
        eprintln!("memreader-app: cannot send a {name} event to the window: {err}");
    }
}

/// Asks the running job (an ingestion, a reading) to stop; false if none runs.
#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>) -> bool {
    state.cancel_job()
}

/// The background job in progress, if any (for a window that was reloaded mid-job).
#[tauri::command]
pub fn running_job(state: State<'_, AppState>) -> Option<u64> {
    state.running_job()
}

/// The settings view: where the library is, the device and what was detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsView {
    pub library_dir: Option<PathBuf>,
    /// Why the library could not be opened.
    pub library_error: Option<String>,
    /// True when the library is the default one (`$MEMREADER_HOME`, else the data directory).
    pub library_is_default: bool,
    /// Why the settings file could not be read (the defaults are in use).
    pub settings_error: Option<String>,
    /// The device spec chosen: `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub detected: Detected,
}

/// What `auto` finds on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detected {
    /// `cuda:0` or `cpu`.
    pub device: String,
    /// Why `auto` runs on the CPU, when it does.
    pub notice: Option<String>,
    /// Whether this build can use NVIDIA GPUs at all (the `cuda` feature).
    pub cuda_built: bool,
}

fn detect() -> Result<Detected, String> {
    static DETECTED: std::sync::OnceLock<Result<Detected, String>> = std::sync::OnceLock::new();
    DETECTED
        .get_or_init(|| {
            let (device, notice) =
                memmamba::device::select(DeviceChoice::Auto).map_err(|err| err.to_string())?;
            Ok(Detected {
                device: if device.is_cuda() { "cuda:0" } else { "cpu" }.to_owned(),
                notice,
                cuda_built: cfg!(feature = "cuda"),
            })
        })
        .clone()
}

fn settings_view(state: &AppState, detected: Detected) -> Result<SettingsView, String> {
    let settings = state.settings();
    let (library_dir, library_error) = state.library_status();
    Ok(SettingsView {
        library_dir,
        library_error,
        library_is_default: settings.library_dir.is_none(),
        settings_error: state.settings_error(),
        device: settings.device()?.to_string(),
        detected,
    })
}

#[tauri::command]
pub async fn settings(state: State<'_, AppState>) -> Result<SettingsView, String> {
    let detected = blocking(detect).await?;
    settings_view(&state, detected)
}

/// Saves the device spec (`auto`, `cpu`, `cuda`, `cuda:N`).
#[tauri::command]
pub async fn set_device(
    state: State<'_, AppState>,
    device: String,
) -> Result<SettingsView, String> {
    let choice = parse_device(&device).map_err(|err| err.to_string())?;
    state.update(|s| {
        s.device = Some(choice.to_string());
    })?;
    settings(state).await
}

/// Opens the folder picker and moves to the library there (creating it if needed); `None`
/// when the picker was cancelled. With `default`, goes back to the default library instead.
#[tauri::command]
pub async fn choose_library(
    app: AppHandle,
    window: WebviewWindow,
    default: bool,
) -> Result<Option<SettingsView>, String> {
    let dir = if default {
        None
    } else {
        let picker = app
            .dialog()
            .file()
            .set_parent(&window)
            .set_title("Choose the library folder");
        match blocking(move || Ok(picker.blocking_pick_folder())).await? {
            Some(dir) => Some(
                dir.into_path()
                    .map_err(|err| format!("the picker gave a path that is not a folder: {err}"))?,
            ),
            None => return Ok(None),
        }
    };
    let state = app.state::<AppState>();
    state.update(|s| s.library_dir = dir)?;
    settings(state).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memreader::library::{IngestOptions, PdfIsolation};

    #[test]
    fn app_info_names_the_library_version() {
        let info = app_info();
        assert_eq!(info.name, "MemReader");
        assert_eq!(info.version, memreader::version());
    }

    #[test]
    fn document_text_gives_the_text_or_the_documents_error() {
        let dir = tempfile::tempdir().unwrap();
        let book = dir.path().join("intentions.txt");
        std::fs::copy(
            memreader::demo_books_dir().join("intentions-wilde.txt"),
            &book,
        )
        .unwrap();
        let broken = dir.path().join("broken.pdf");
        std::fs::write(&broken, b"%PDF-1.7\ngarbage").unwrap();
        let library = Library::open(&dir.path().join("library")).unwrap();
        let options = IngestOptions::new(PdfIsolation::InProcess);
        library
            .ingest(&[book, broken], &options, &mut |_| {})
            .unwrap();
        let docs = library.documents().unwrap();
        assert_eq!(docs.len(), 2);
        let ready = docs.iter().find(|d| d.error.is_none()).unwrap();
        let text = document_text_of(&library, &ready.id[..8]).unwrap();
        assert_eq!(&text.record, ready);
        assert!(text.document.text.contains("The Decay of Lying"));
        assert!(!text.document.chapters.is_empty());

        let failed = docs.iter().find(|d| d.error.is_some()).unwrap();
        let err = document_text_of(&library, &failed.id).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: ", failed.path.display())),
            "{err}"
        );

        let err = document_text_of(&library, "abcdef").unwrap_err();
        assert!(err.contains("no document with id"), "{err}");
    }

    fn drop_of(paths: &[PathBuf]) -> WindowEvent {
        WindowEvent::DragDrop(DragDropEvent::Drop {
            paths: paths.to_vec(),
            position: tauri::PhysicalPosition::new(10.0, 20.0),
        })
    }

    #[test]
    fn only_a_drop_of_files_or_folders_is_ingested() {
        let paths = [
            PathBuf::from("/home/me/moby.epub"),
            PathBuf::from("/home/me/books"),
        ];
        assert_eq!(dropped(&drop_of(&paths)).as_deref(), Some(&paths[..]));
        // Text or a link dropped has no paths; the drag's other steps name none to ingest.
        assert_eq!(dropped(&drop_of(&[])), None);
        let position = tauri::PhysicalPosition::new(1.0, 2.0);
        let enter = DragDropEvent::Enter {
            paths: paths.to_vec(),
            position,
        };
        for event in [
            enter,
            DragDropEvent::Over { position },
            DragDropEvent::Leave,
        ] {
            assert_eq!(
                dropped(&WindowEvent::DragDrop(event.clone())),
                None,
                "{event:?}"
            );
        }
        assert_eq!(dropped(&WindowEvent::Focused(true)), None);
    }

    #[test]
    fn a_dropped_folder_adds_what_is_in_it_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let books = dir.path().join("books");
        std::fs::create_dir_all(books.join("shelf")).unwrap();
        std::fs::write(
            books.join("shelf/owls.txt"),
            "NIGHT BIRDS\n\nThe tawny owl calls.\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secret.txt"),
            "SECRET\n\nThe key is under the mat.\n",
        )
        .unwrap();
        let library = Library::open(&dir.path().join("library")).unwrap();
        let paths = dropped(&drop_of(std::slice::from_ref(&books))).unwrap();
        let finished = jobs::run(
            1,
            &library,
            &paths,
            &IngestOptions::new(PdfIsolation::InProcess),
            PROGRESS_INTERVAL,
            &mut |_| {},
        );
        assert!(matches!(
            finished,
            IngestEvent::Finished { error: None, .. }
        ));
        let docs = library.documents().unwrap();
        let files: Vec<_> = docs.iter().map(|d| d.path.clone()).collect();
        assert_eq!(files, [books.join("shelf/owls.txt")]);
    }

    #[test]
    fn the_window_is_told_why_dropped_files_were_not_added() {
        let event = refused("Files are being added; wait for that to finish or cancel it first.");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "kind": "refused",
                "error": "The dropped files were not added. Files are being added; wait for \
                          that to finish or cancel it first."
            })
        );
    }

    /// The parameters of the command `name` (`#[tauri::command]` in `source`).
    fn command_parameters<'a>(source: &'a str, name: &str) -> Option<&'a str> {
        source.split("#[tauri::command]").skip(1).find_map(|item| {
            let signature = &item[..item.find('{')?];
            let (_, rest) = signature.split_once("fn ")?;
            let (found, rest) = rest.split_once('(')?;
            if found.trim() != name {
                return None;
            }
            // Up to the parenthesis that closes the list.
            let mut depth = 0;
            let end = rest.char_indices().find_map(|(at, c)| {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => return Some(at),
                    ')' => depth -= 1,
                    _ => {}
                }
                None
            })?;
            Some(&rest[..end])
        })
    }

    /// The page never names a file or folder: every path the app reads or writes comes from a
    /// drop or a picker (the dialogs open from Rust). A command that took one would let a
    /// compromised page read any file into the library.
    #[test]
    fn no_command_of_the_window_takes_a_path() {
        let main = include_str!("main.rs");
        let sources = [include_str!("commands.rs"), include_str!("reading.rs")];
        let list = &main[main.find("generate_handler![").unwrap()..];
        let list = &list[..list.find(']').unwrap()];
        let names: Vec<&str> = list
            .split([',', '['])
            .skip(1)
            .filter_map(|entry| entry.trim().rsplit("::").next())
            .filter(|name| !name.is_empty())
            .collect();
        assert!(names.len() >= 19, "{names:?}");
        assert!(!names.contains(&"ingest_paths"), "{names:?}");
        for name in names {
            let parameters = sources
                .iter()
                .find_map(|source| command_parameters(source, name))
                .unwrap_or_else(|| panic!("the command {name} was not found"));
            let lower = parameters.to_lowercase();
            for word in ["path", "file", "dir"] {
                assert!(
                    !lower.contains(word),
                    "the command {name} takes a path from the page: ({parameters})"
                );
            }
        }
    }
}
