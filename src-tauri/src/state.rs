//! What the app holds while it runs: its settings, the library they point at, and the
//! ingestion job in progress (at most one: a library has one index writer).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use memreader::library::Library;
use memreader::model::Model;

use crate::settings::Settings;

pub struct AppState {
    settings_file: PathBuf,
    inner: Mutex<Inner>,
    /// The model, once loaded (on the device of the settings); loading takes the lock, so
    /// that two callers never load it twice.
    model: Mutex<Option<Arc<Model>>>,
}

struct Inner {
    settings: Settings,
    /// Why the settings file could not be read (the defaults are in use).
    settings_error: Option<String>,
    /// The library directory, if one could be determined.
    dir: Option<PathBuf>,
    library: Result<Arc<Library>, String>,
    job: Option<Job>,
    next_job: u64,
}

/// The background job in progress (an ingestion or a reading).
struct Job {
    id: u64,
    cancel: Arc<AtomicBool>,
    /// What it does, for the message that refuses another: "Files are being added".
    what: &'static str,
}

impl AppState {
    /// Loads the settings from `settings_file` and opens the library they name. Failures are
    /// kept, to be shown in the window, rather than stopping the app.
    pub fn new(settings_file: PathBuf) -> AppState {
        let (settings, settings_error) = match Settings::load(&settings_file) {
            Ok(settings) => (settings, None),
            Err(err) => (Settings::default(), Some(err)),
        };
        let (dir, library) = open_library(&settings);
        AppState {
            settings_file,
            inner: Mutex::new(Inner {
                settings,
                settings_error,
                dir,
                library,
                job: None,
                next_job: 1,
            }),
            model: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under the lock is a plain assignment: a panic cannot leave it half-done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open library, or why there is none.
    pub fn library(&self) -> Result<Arc<Library>, String> {
        self.lock().library.clone()
    }

    pub fn settings(&self) -> Settings {
        self.lock().settings.clone()
    }

    pub fn settings_error(&self) -> Option<String> {
        self.lock().settings_error.clone()
    }

    /// The library directory and, if it could not be opened, why.
    pub fn library_status(&self) -> (Option<PathBuf>, Option<String>) {
        let inner = self.lock();
        (inner.dir.clone(), inner.library.as_ref().err().cloned())
    }

    /// Changes the settings with `change`, saves them and, if the library directory changed,
    /// opens the new library (a move is refused while a background job runs); if the device
    /// changed, the model is loaded again on it when next needed.
    pub fn update(&self, change: impl FnOnce(&mut Settings)) -> Result<(), String> {
        let mut inner = self.lock();
        let mut settings = inner.settings.clone();
        change(&mut settings);
        if settings.library_dir != inner.settings.library_dir {
            busy(&inner).map_err(|why| format!("The library cannot move now. {why}"))?;
        }
        settings.save(&self.settings_file)?;
        if settings.library_dir != inner.settings.library_dir {
            let (dir, library) = open_library(&settings);
            inner.dir = dir;
            inner.library = library;
        }
        let device_changed = settings.device != inner.settings.device;
        inner.settings = settings;
        inner.settings_error = None;
        // `model()` takes the model's lock before this one: release this one first.
        drop(inner);
        if device_changed {
            // Loaded again, on the new device, when next needed.
            *self.model.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Ok(())
    }

    /// The model (`$MEMREADER_MODEL`, else the bundled one) on the device of the settings,
    /// loading it on first use; blocks while it loads, so call it off the main thread. A
    /// failure is not kept: the next call tries again (after the user put the model in place).
    pub fn model(&self) -> Result<Arc<Model>, String> {
        let mut slot = self.model.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(model) = &*slot {
            return Ok(model.clone());
        }
        let choice = self.settings().device()?;
        let (device, _) = memmamba::device::select(choice).map_err(|e| e.to_string())?;
        let dir = memreader::model::model_dir(None);
        let model = Model::load(&dir, &device)
            .map(Arc::new)
            .map_err(|e| e.to_string())?;
        *slot = Some(model.clone());
        Ok(model)
    }

    /// Registers a new background job whose cancel flag is `cancel`; refused while one runs.
    /// `what` says what it does ("Files are being added").
    pub fn begin_job(&self, cancel: Arc<AtomicBool>, what: &'static str) -> Result<u64, String> {
        let mut inner = self.lock();
        busy(&inner)?;
        let id = inner.next_job;
        inner.next_job += 1;
        inner.job = Some(Job { id, cancel, what });
        Ok(id)
    }

    /// Fails, saying why, while a background job runs.
    pub fn idle(&self) -> Result<(), String> {
        busy(&self.lock())
    }

    /// Forgets job `id` once it has finished.
    pub fn end_job(&self, id: u64) {
        let mut inner = self.lock();
        if inner.job.as_ref().is_some_and(|job| job.id == id) {
            inner.job = None;
        }
    }

    /// Asks the job in progress to stop (an ingestion after the files it has started, a
    /// reading after its current block); false if none runs.
    pub fn cancel_job(&self) -> bool {
        match &self.lock().job {
            Some(job) => {
                job.cancel.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// The id of the job in progress.
    pub fn running_job(&self) -> Option<u64> {
        self.lock().job.as_ref().map(|job| job.id)
    }
}

fn busy(inner: &Inner) -> Result<(), String> {
    match &inner.job {
        Some(job) => Err(format!(
            "{}; wait for that to finish or cancel it first.",
            job.what
        )),
        None => Ok(()),
    }
}

fn open_library(settings: &Settings) -> (Option<PathBuf>, Result<Arc<Library>, String>) {
    match settings.library_dir() {
        Ok(dir) => {
            let library = Library::open(&dir)
                .map(Arc::new)
                .map_err(|err| format!("The library at {} cannot be opened: {err}", dir.display()));
            (Some(dir), library)
        }
        Err(err) => (None, Err(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn state_in(dir: &Path) -> AppState {
        let settings = Settings {
            library_dir: Some(dir.join("library")),
            device: None,
        };
        let file = dir.join("settings.json");
        settings.save(&file).unwrap();
        AppState::new(file)
    }

    #[test]
    fn opens_the_library_its_settings_name() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path());
        assert_eq!(state.library().unwrap().dir(), dir.path().join("library"));
        assert_eq!(
            state.library_status(),
            (Some(dir.path().join("library")), None)
        );
        assert_eq!(state.settings_error(), None);
    }

    #[test]
    fn a_library_that_cannot_be_opened_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let settings = Settings {
            library_dir: Some(file.clone()),
            device: None,
        };
        settings.save(&dir.path().join("settings.json")).unwrap();
        let state = AppState::new(dir.path().join("settings.json"));
        let err = state.library().err().unwrap();
        assert!(err.contains("a-file cannot be opened"), "{err}");
        // Choosing another folder recovers.
        state
            .update(|s| s.library_dir = Some(dir.path().join("library")))
            .unwrap();
        assert!(state.library().is_ok());
    }

    #[test]
    fn a_damaged_settings_file_is_reported_and_the_defaults_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.json");
        std::fs::write(&file, b"[1, 2").unwrap();
        let state = AppState::new(file.clone());
        assert!(state
            .settings_error()
            .unwrap()
            .contains("not a settings file"));
        assert_eq!(state.settings(), Settings::default());
        state.update(|s| s.device = Some("cpu".into())).unwrap();
        assert_eq!(state.settings_error(), None);
        assert_eq!(
            Settings::load(&file).unwrap().device.as_deref(),
            Some("cpu")
        );
    }

    #[test]
    fn one_job_at_a_time_and_the_library_stays_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path());
        assert!(!state.cancel_job());
        let cancel = Arc::new(AtomicBool::new(false));
        assert_eq!(state.idle(), Ok(()));
        let job = state
            .begin_job(cancel.clone(), "Files are being added")
            .unwrap();
        assert_eq!(state.running_job(), Some(job));
        let err = state.begin_job(Arc::default(), "Reading").unwrap_err();
        assert_eq!(
            err,
            "Files are being added; wait for that to finish or cancel it first."
        );
        assert_eq!(state.idle(), Err(err));
        let err = state
            .update(|s| s.library_dir = Some(dir.path().join("elsewhere")))
            .unwrap_err();
        assert!(
            err.starts_with("The library cannot move now. Files are"),
            "{err}"
        );
        assert!(state.cancel_job());
        assert!(cancel.load(Ordering::SeqCst));
        state.end_job(job + 1);
        assert_eq!(state.running_job(), Some(job));
        state.end_job(job);
        assert_eq!(state.running_job(), None);
        assert!(state.begin_job(Arc::default(), "Reading").unwrap() > job);
    }

    #[test]
    fn the_model_loads_once_again_after_a_device_change_and_a_failure_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path());
        let model_dir = dir.path().join("model");
        // The only test that reads MEMREADER_MODEL, so setting it races with nothing.
        std::env::set_var(memreader::model::MODEL_VARIABLE, &model_dir);
        let err = state.model().unwrap_err();
        assert!(err.contains("model"), "{err}");
        crate::jobs::tests::tiny_model(&model_dir);
        let first = state.model().unwrap();
        assert!(Arc::ptr_eq(&first, &state.model().unwrap()));
        state.update(|s| s.device = Some("cpu".into())).unwrap();
        let second = state.model().unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.dir(), model_dir);
    }
}
