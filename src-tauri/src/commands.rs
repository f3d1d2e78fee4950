//! The commands the UI calls (`invoke` in ui/src/api.ts): thin wrappers over `memreader`.
//! Errors cross to the UI as their messages, which name the file and what is wrong.

use std::path::Path;

use memreader::book::{demo_book_paths, Book, BookSummary};
use serde::Serialize;

/// What the app's header shows.
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

/// Opens the bundled demo books and summarizes each. Parsing takes a moment, so it runs off
/// the UI thread.
#[tauri::command]
pub async fn demo_books() -> Result<Vec<BookSummary>, String> {
    tauri::async_runtime::spawn_blocking(|| summarize_books(&memreader::demo_books_dir()))
        .await
        .map_err(|err| format!("opening the demo books failed: {err}"))?
}

/// The summaries of the `.txt` books in `dir`, sorted by file name; the first book that cannot
/// be opened fails the whole list, with its message.
fn summarize_books(dir: &Path) -> Result<Vec<BookSummary>, String> {
    demo_book_paths(dir)
        .map_err(|err| err.to_string())?
        .iter()
        .map(|path| {
            Book::open(path)
                .map(|book| book.summary())
                .map_err(|err| err.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_info_names_the_library_version() {
        let info = app_info();
        assert_eq!(info.name, "MemReader");
        assert_eq!(info.version, memreader::version());
    }

    #[test]
    fn demo_books_summarizes_every_bundled_book() {
        let books = tauri::async_runtime::block_on(demo_books()).unwrap();
        let files: Vec<&str> = books.iter().map(|b| b.file.as_str()).collect();
        assert_eq!(
            files,
            ["household-stories-grimm.txt", "intentions-wilde.txt"]
        );
        for summary in &books {
            let path = memreader::demo_books_dir().join(&summary.file);
            let book = Book::open(&path).unwrap();
            assert_eq!(summary, &book.summary());
            assert!(summary.words > 10_000, "{summary:?}");
            assert!(summary.passages * 300 >= summary.words, "{summary:?}");
            assert!(!summary.title.is_empty(), "{summary:?}");
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join("memreader-app-test-no-such-folder");
        let err = summarize_books(&dir).unwrap_err();
        assert!(err.contains("memreader-app-test-no-such-folder"), "{err}");
    }

    #[test]
    fn a_book_that_cannot_be_parsed_fails_the_list_with_its_name() {
        let dir = std::env::temp_dir().join(format!("memreader-app-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty.txt"), b"").unwrap();
        let result = summarize_books(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let err = result.unwrap_err();
        assert!(err.contains("empty.txt"), "{err}");
    }
}
