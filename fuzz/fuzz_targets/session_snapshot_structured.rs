//! Session snapshot import past the container: the input is a manifest and the states region
//! (`memreader_fuzz::split_structured`), around which a valid container is built (header with
//! the right lengths, checksum); when the manifest is JSON, each document's `blake3` is set to
//! the hash of the bytes its `offset` and `length` name, so the states reach the memory-state
//! loader. What is checked is the manifest's and the states' validation, and import's promises
//! (`memreader_fuzz::import_snapshot`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memreader::snapshot::container;
use memreader_fuzz::{import_snapshot, split_structured};

fuzz_target!(|data: &[u8]| {
    let (manifest, states) = split_structured(data);
    let manifest = fix_hashes(manifest, states);
    if let Err(message) = import_snapshot(&container(&manifest, states)) {
        // the container is whole: what is refused is its content
        assert!(
            !message.contains("the checksum does not match")
                && !message.contains("the snapshot is truncated"),
            "{message}"
        );
    }
});

/// `manifest` with each document's `blake3` the hash of its state's bytes, when it is JSON.
fn fix_hashes(manifest: &[u8], states: &[u8]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return manifest.to_vec();
    };
    let Some(documents) = value.get_mut("documents").and_then(|d| d.as_array_mut()) else {
        return manifest.to_vec();
    };
    for doc in documents {
        let range = (|| {
            let offset = usize::try_from(doc.get("offset")?.as_u64()?).ok()?;
            let length = usize::try_from(doc.get("length")?.as_u64()?).ok()?;
            states.get(offset..offset.checked_add(length)?)
        })();
        if let (Some(bytes), Some(doc)) = (range, doc.as_object_mut()) {
            doc.insert(
                "blake3".to_owned(),
                blake3::hash(bytes).to_hex().to_string().into(),
            );
        }
    }
    serde_json::to_vec(&value).expect("a JSON value serialises")
}
