//! The commands over the model: the model in use, reading documents into memory (a background
//! job reporting through `read` events), asking with citations (the answer's text streaming
//! through a channel of the call) and the session's history, the memory inspector's notes, and
//! session snapshots (files chosen in the native dialogs, opened from Rust). All of them use the
//! session `memreader::session::DEFAULT_SESSION`, as the CLI does by default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use memreader::ask::{Answer, AskEvent, AskOptions};
use memreader::library::Library;
use memreader::memory::MemoryInfo;
use memreader::model::Model;
use memreader::notes::NotesReport;
use memreader::session::{self, HistoryEntry, DEFAULT_SESSION};
use memreader::snapshot::{self, ExportReport, ImportReport};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, State, WebviewWindow};
use tauri_plugin_dialog::DialogExt;

use crate::commands::{blocking, send};
use crate::jobs::{self, ReadEvent, READ_EVENT};
use crate::state::AppState;

/// How often a reading updates the window at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);
/// The file name the export dialog proposes.
const SNAPSHOT_NAME: &str = "memreader-session.memrsnap";

/// The model in use, as the settings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelView {
    /// Where it is looked for: `$MEMREADER_MODEL`, else the bundled `assets/model`.
    pub dir: PathBuf,
    /// Why it could not be loaded (then the fields below are absent).
    pub error: Option<String>,
    pub device: Option<String>,
    pub weights_blake3: Option<String>,
    pub layers: Option<usize>,
    pub d_model: Option<usize>,
    pub vocab_size: Option<usize>,
    pub pool_slots: Option<usize>,
}

fn model_view(model: Result<&Model, String>) -> ModelView {
    let dir = memreader::model::model_dir(None);
    match model {
        Ok(model) => {
            let config = model.config();
            ModelView {
                dir: model.dir().to_owned(),
                error: None,
                device: Some(
                    if model.device().is_cuda() {
                        "cuda"
                    } else {
                        "cpu"
                    }
                    .to_owned(),
                ),
                weights_blake3: Some(model.weights_blake3().to_owned()),
                layers: Some(config.n_layer),
                d_model: Some(config.d_model),
                vocab_size: Some(config.vocab_size),
                pool_slots: Some(config.pool_slots),
            }
        }
        Err(error) => ModelView {
            dir,
            error: Some(error),
            device: None,
            weights_blake3: None,
            layers: None,
            d_model: None,
            vocab_size: None,
            pool_slots: None,
        },
    }
}

/// Loads the model (if it is not yet) and describes it, or says why it cannot be loaded.
#[tauri::command]
pub async fn model_info(app: AppHandle) -> Result<ModelView, String> {
    blocking(move || {
        let model = app.state::<AppState>().model();
        Ok(model_view(model.as_deref().map_err(Clone::clone)))
    })
    .await
}

/// The memory of every document that has one, by document id.
#[tauri::command]
pub async fn memories(state: State<'_, AppState>) -> Result<HashMap<String, MemoryInfo>, String> {
    let library = state.library()?;
    blocking(move || memories_of(&library)).await
}

fn memories_of(library: &Library) -> Result<HashMap<String, MemoryInfo>, String> {
    let mut out = HashMap::new();
    for doc in library.documents().map_err(|e| e.to_string())? {
        if let Some(info) = memreader::memory::info(library, &doc.id).map_err(|e| e.to_string())? {
            out.insert(doc.id, info);
        }
    }
    Ok(out)
}

/// Starts reading documents (ids) into memory, one after the other, in the background; returns
/// the job's id. The job reports through `read` events; `cancel_job` stops it.
#[tauri::command]
pub async fn read_documents(app: AppHandle, ids: Vec<String>) -> Result<u64, String> {
    if ids.is_empty() {
        return Err("Choose a document to read.".into());
    }
    let state = app.state::<AppState>();
    state.idle()?;
    let library = state.library()?;
    let docs = {
        let library = library.clone();
        blocking(move || {
            ids.iter()
                .map(|id| {
                    let record = library.document(id).map_err(|e| e.to_string())?;
                    Ok((record.id.clone(), record.display_title()))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .await?
    };
    let model = {
        let app = app.clone();
        blocking(move || app.state::<AppState>().model()).await?
    };
    let cancel = std::sync::Arc::default();
    let job = state.begin_job(
        std::sync::Arc::clone(&cancel),
        "Documents are being read into memory",
    )?;
    let spawned = std::thread::Builder::new()
        .name(format!("read-{job}"))
        .spawn({
            let app = app.clone();
            move || {
                let mut emit = |event: ReadEvent| send(&app, READ_EVENT, &event);
                let finished = jobs::read(
                    job,
                    &library,
                    &model,
                    &docs,
                    &cancel,
                    PROGRESS_INTERVAL,
                    &mut emit,
                );
                app.state::<AppState>().end_job(job);
                send(&app, READ_EVENT, &finished);
            }
        });
    if let Err(err) = spawned {
        state.end_job(job);
        return Err(format!("cannot start reading: {err}"));
    }
    Ok(job)
}

/// Answers `question` from the documents `docs` (all when empty) and records it in the
/// session's history; the answer's text streams to `on_event` as it is generated (see
/// `memreader::ask::AskEvent`), and the answer with its citations is what the command returns.
/// Without a model the answer comes from search alone, and its notices say why.
#[tauri::command]
pub async fn ask(
    app: AppHandle,
    question: String,
    docs: Vec<String>,
    on_event: Channel<AskEvent>,
) -> Result<Answer, String> {
    if question.trim().is_empty() {
        return Err("Type a question first.".into());
    }
    blocking(move || {
        let state = app.state::<AppState>();
        let library = state.library()?;
        let model = state.model();
        answer_and_record(&library, model, &question, docs, &mut |event| {
            if let Err(err) = on_event.send(event) {
                // The window is gone (the app is closing); the answer is still recorded.
                eprintln!("memreader-app: cannot stream the answer to the window: {err}");
            }
        })
    })
    .await
}

fn answer_and_record(
    library: &Library,
    model: Result<std::sync::Arc<Model>, String>,
    question: &str,
    docs: Vec<String>,
    on_event: &mut dyn FnMut(AskEvent),
) -> Result<Answer, String> {
    let options = AskOptions {
        docs: docs.clone(),
        ..AskOptions::default()
    };
    let mut answer =
        memreader::ask::ask_with(library, model.as_deref().ok(), question, &options, on_event)
            .map_err(|e| e.to_string())?;
    if let Err(why) = &model {
        answer.notices.insert(
            0,
            format!("No model is in use, so search alone answered: {why}"),
        );
    }
    let entry = HistoryEntry {
        asked_at: session::now(),
        docs,
        answer: answer.clone(),
    };
    session::record(library, DEFAULT_SESSION, &entry).map_err(|e| e.to_string())?;
    Ok(answer)
}

/// The questions asked in the session and their answers, oldest first.
#[tauri::command]
pub async fn history(state: State<'_, AppState>) -> Result<Vec<HistoryEntry>, String> {
    let library = state.library()?;
    blocking(move || {
        session::load(&library, DEFAULT_SESSION)
            .map(|s| s.history)
            .map_err(|e| e.to_string())
    })
    .await
}

/// What the model noted while reading document `id`: every layer's notes with their source
/// passages, and a histogram of `bins` slices.
#[tauri::command]
pub async fn notes(app: AppHandle, id: String, bins: usize) -> Result<NotesReport, String> {
    blocking(move || {
        let state = app.state::<AppState>();
        let library = state.library()?;
        let model = state.model()?;
        memreader::notes::notes(&library, &model, &id, bins.clamp(1, 1000))
            .map_err(|e| e.to_string())
    })
    .await
}

/// Opens the save dialog and exports the session's memories and history to the file chosen;
/// `None` when the dialog was cancelled.
#[tauri::command]
pub async fn export_snapshot(
    app: AppHandle,
    window: WebviewWindow,
) -> Result<Option<ExportReport>, String> {
    let picker = app
        .dialog()
        .file()
        .set_parent(&window)
        .set_title("Export the session")
        .set_file_name(SNAPSHOT_NAME)
        .add_filter("MemReader snapshots", &["memrsnap"]);
    let Some(path) = blocking(move || Ok(picker.blocking_save_file())).await? else {
        return Ok(None);
    };
    let path = path
        .into_path()
        .map_err(|err| format!("the dialog gave a path that is not a file: {err}"))?;
    blocking(move || {
        let state = app.state::<AppState>();
        let library = state.library()?;
        let model = state.model()?;
        snapshot::export(&library, &model, DEFAULT_SESSION, &path).map_err(|e| e.to_string())
    })
    .await
    .map(Some)
}

/// Opens the file dialog and imports the snapshot chosen into the session; `None` when the
/// dialog was cancelled. A snapshot that cannot be imported changes nothing; its error says
/// why.
#[tauri::command]
pub async fn import_snapshot(
    app: AppHandle,
    window: WebviewWindow,
) -> Result<Option<ImportReport>, String> {
    let state = app.state::<AppState>();
    state.idle()?;
    let picker = app
        .dialog()
        .file()
        .set_parent(&window)
        .set_title("Import a session")
        .add_filter("MemReader snapshots", &["memrsnap"]);
    let Some(path) = blocking(move || Ok(picker.blocking_pick_file())).await? else {
        return Ok(None);
    };
    let path = path
        .into_path()
        .map_err(|err| format!("the dialog gave a path that is not a file: {err}"))?;
    blocking(move || {
        let state = app.state::<AppState>();
        let library = state.library()?;
        let model = state.model()?;
        snapshot::import(&library, &model, &path, Some(DEFAULT_SESSION)).map_err(|e| e.to_string())
    })
    .await
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::tiny_model;
    use memreader::library::{IngestOptions, PdfIsolation};

    /// Runs reading job `job` over `docs` to its end: its last event and all the others.
    fn read_job(
        job: u64,
        library: &Library,
        model: &Model,
        docs: &[(String, String)],
    ) -> (ReadEvent, Vec<ReadEvent>) {
        let mut events = Vec::new();
        let cancel = std::sync::Arc::default();
        let finished = jobs::read(
            job,
            library,
            model,
            docs,
            &cancel,
            Duration::ZERO,
            &mut |e| events.push(e),
        );
        (finished, events)
    }

    /// A library with one short book, and a tiny random model.
    fn setup(dir: &std::path::Path) -> (Library, Model, String) {
        let book = dir.join("owls.txt");
        std::fs::write(
            &book,
            "NIGHT BIRDS\n\nThe tawny owl calls twice in the lamplit orchard. The barn owl \
             answers from the hayloft. Owls hunt mice in the dark fields.\n",
        )
        .unwrap();
        let library = Library::open(&dir.join("library")).unwrap();
        library
            .ingest(
                &[book],
                &IngestOptions::new(PdfIsolation::InProcess),
                &mut |_| {},
            )
            .unwrap();
        let id = library.documents().unwrap()[0].id.clone();
        let model = tiny_model(&dir.join("model"));
        (library, model, id)
    }

    #[test]
    fn asking_streams_the_answer_cites_the_passage_and_records_the_question() {
        let dir = tempfile::tempdir().unwrap();
        let (library, model, id) = setup(dir.path());
        let mut events = Vec::new();
        let answer = answer_and_record(
            &library,
            Ok(std::sync::Arc::new(model)),
            "Where does the tawny owl call?",
            vec![],
            &mut |e| events.push(e),
        )
        .unwrap();
        let citation = &answer.citations[0];
        assert_eq!(citation.doc_id, id);
        assert!(citation.quote.contains("tawny owl"), "{answer:?}");
        // what the window was sent while the model generated: the generated text, then the
        // extracted answer in its place (a random model is never confident)
        let (replaced, streamed) = events.split_last().unwrap();
        let streamed: String = streamed
            .iter()
            .map(|e| match e {
                AskEvent::Delta(piece) => piece.as_str(),
                AskEvent::Replace(text) => panic!("replaced early by {text:?}: {events:?}"),
            })
            .collect();
        assert_eq!(Some(streamed), answer.generated);
        assert_eq!(replaced, &AskEvent::Replace(answer.text.clone()));
        let history = session::load(&library, DEFAULT_SESSION).unwrap().history;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].answer, answer);
    }

    #[test]
    fn without_a_model_search_answers_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (library, _, id) = setup(dir.path());
        let mut events = Vec::new();
        let answer = answer_and_record(
            &library,
            Err("the model is missing: /nowhere/config.json does not exist".into()),
            "Where does the tawny owl call?",
            vec![id[..8].to_owned()],
            &mut |e| events.push(e),
        )
        .unwrap();
        assert_eq!(events, [AskEvent::Replace(answer.text.clone())]);
        assert!(
            answer.citations[0].quote.contains("tawny owl"),
            "{answer:?}"
        );
        assert_eq!(
            answer.notices[0],
            "No model is in use, so search alone answered: the model is missing: \
             /nowhere/config.json does not exist"
        );
        let history = session::load(&library, DEFAULT_SESSION).unwrap().history;
        assert_eq!(history[0].docs, [id[..8].to_owned()]);
    }

    #[test]
    fn a_model_is_described_and_a_missing_one_explained() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_model(&dir.path().join("model"));
        let view = model_view(Ok(&model));
        assert_eq!(view.dir, dir.path().join("model"));
        assert_eq!(view.error, None);
        assert_eq!(view.device.as_deref(), Some("cpu"));
        assert_eq!(view.layers, Some(model.config().n_layer));
        assert_eq!(view.weights_blake3.as_deref(), Some(model.weights_blake3()));
        let missing = model_view(Err("the model is missing".into()));
        assert_eq!(missing.error.as_deref(), Some("the model is missing"));
        assert_eq!(missing.layers, None);
    }

    #[test]
    fn reading_makes_a_memory_whose_notes_and_snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (library, model, id) = setup(dir.path());
        assert!(memories_of(&library).unwrap().is_empty());
        let docs = [(id.clone(), "Night birds".to_owned())];
        let (finished, events) = read_job(3, &library, &model, &docs);
        assert!(matches!(
            finished,
            ReadEvent::Finished {
                job: 3,
                read: 1,
                failed: 0,
                cancelled: false
            }
        ));
        assert!(
            matches!(&events[0], ReadEvent::Started { titles, .. } if titles == &["Night birds"])
        );
        let last = events.iter().rev().find_map(|e| match e {
            ReadEvent::Progress { done, target, .. } => Some((*done, *target)),
            _ => None,
        });
        let (done, target) = last.unwrap();
        assert_eq!(done, target);
        let Some(ReadEvent::Document {
            report: Some(report),
            error: None,
            ..
        }) = events.last()
        else {
            panic!("{events:?}")
        };
        assert_eq!(report.tokens_read, target);

        let memories = memories_of(&library).unwrap();
        assert!(memories[&id].complete());
        let notes = memreader::notes::notes(&library, &model, &id, 10).unwrap();
        assert_eq!(notes.layers.len(), model.config().n_layer);

        let file = dir.path().join("session.memrsnap");
        let exported = snapshot::export(&library, &model, DEFAULT_SESSION, &file).unwrap();
        assert_eq!(exported.documents.len(), 1);
        let imported = snapshot::import(&library, &model, &file, Some(DEFAULT_SESSION)).unwrap();
        assert_eq!(imported.documents[0].id, id);
        std::fs::write(&file, b"not a snapshot").unwrap();
        let err = snapshot::import(&library, &model, &file, Some(DEFAULT_SESSION)).unwrap_err();
        assert!(err.to_string().contains("session.memrsnap"), "{err}");
    }

    #[test]
    fn a_document_that_cannot_be_read_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (library, model, id) = setup(dir.path());
        let docs = [
            ("ffff".repeat(16), "Gone".to_owned()),
            (id.clone(), "Night birds".to_owned()),
        ];
        let (finished, events) = read_job(1, &library, &model, &docs);
        assert!(matches!(
            finished,
            ReadEvent::Finished {
                read: 1,
                failed: 1,
                ..
            }
        ));
        let errors: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ReadEvent::Document { error, .. } => Some(error.clone()),
                _ => None,
            })
            .collect();
        assert!(
            errors[0]
                .as_deref()
                .unwrap()
                .contains("no document with id"),
            "{errors:?}"
        );
        assert_eq!(errors[1], None);
    }
}
