//! The app's settings: where the library is and which device the model runs on, kept in
//! `settings.json` in the app's config directory. A missing file means the defaults; a damaged
//! one is an error that names it (the app then runs on the defaults and says so).

use std::path::{Path, PathBuf};

use memmamba::device::{parse_device, DeviceChoice};
use serde::{Deserialize, Serialize};

/// What the user chose; `None` and absent fields are the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The library directory; by default `memreader::library::library_dir(None)`
    /// (`$MEMREADER_HOME`, else the platform's data directory).
    pub library_dir: Option<PathBuf>,
    /// A device spec (`auto`, `cpu`, `cuda`, `cuda:N`); by default `auto`.
    pub device: Option<String>,
}

impl Settings {
    /// Reads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Settings, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|err| format!("{}: not a settings file: {err}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(err) => Err(format!("{}: cannot read it: {err}", path.display())),
        }
    }

    /// Writes `path` (and its folder), through a temporary file so that a crash cannot leave
    /// half a file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |err: std::io::Error| format!("{}: cannot write it: {err}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(|err| err.to_string())?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, json).map_err(fail)?;
        std::fs::rename(&temporary, path).map_err(fail)
    }

    /// The device choice; a spec that does not parse (a hand-edited file) is an error.
    pub fn device(&self) -> Result<DeviceChoice, String> {
        self.device
            .as_deref()
            .map_or(Ok(DeviceChoice::Auto), |spec| {
                parse_device(spec).map_err(|err| err.to_string())
            })
    }

    /// The library directory these settings give.
    pub fn library_dir(&self) -> Result<PathBuf, String> {
        memreader::library::library_dir(self.library_dir.as_deref()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_gives_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::load(&dir.path().join("settings.json")).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.device().unwrap(), DeviceChoice::Auto);
    }

    #[test]
    fn settings_survive_a_save_and_a_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/memreader/settings.json");
        let settings = Settings {
            library_dir: Some(dir.path().join("books")),
            device: Some("cpu".into()),
        };
        settings.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), settings);
        assert_eq!(settings.library_dir().unwrap(), dir.path().join("books"));
        assert_eq!(settings.device().unwrap(), DeviceChoice::Cpu);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = Settings::load(&path).unwrap_err();
        assert!(err.contains("settings.json: not a settings file"), "{err}");
    }

    #[test]
    fn a_bad_device_spec_is_an_error() {
        let settings = Settings {
            library_dir: None,
            device: Some("gpu".into()),
        };
        let err = settings.device().unwrap_err();
        assert!(err.contains("expected auto, cpu, cuda or cuda:N"), "{err}");
    }
}
