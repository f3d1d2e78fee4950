//! MemReader: the library behind the CLI and the desktop app.

/// The version of MemReader, as built.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
