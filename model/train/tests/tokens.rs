//! The token stream file: what is saved loads back, and a damaged file is refused by name.

mod common;

use common::{demo_store, small_tokenizer};
use memmamba_train::tokens::TokenStore;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("memmamba-tokens-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_saved_stream_loads_back_identical() {
    let store = demo_store(small_tokenizer());
    let dir = temp_dir("roundtrip");
    let path = dir.join("demo.tokens");
    store.save(&path).unwrap();
    assert_eq!(TokenStore::load(&path).unwrap(), store);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        2 * store.tokens.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_truncated_stream_is_refused_naming_the_file() {
    let store = demo_store(small_tokenizer());
    let dir = temp_dir("truncated");
    let path = dir.join("demo.tokens");
    store.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 4 * 2]).unwrap();
    let err = TokenStore::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("demo.books.json") && err.contains("ends at token"),
        "{err}"
    );
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = TokenStore::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("demo.tokens") && err.contains("odd byte count"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
