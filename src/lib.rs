//! MemReader: the library behind the CLI and the desktop app.

pub mod book;
pub mod library;

/// The version of MemReader, as built.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Where the bundled demo books are in the source tree.
pub fn demo_books_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}
