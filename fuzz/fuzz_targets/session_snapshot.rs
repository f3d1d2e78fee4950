//! Session snapshot import (`memreader snapshot import`) of raw bytes: the container (magic,
//! version, lengths, checksum), then whatever gets past it. Seeds are real snapshots, so
//! mutations that keep the checksum are rare; `session_snapshot_structured` goes past it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memreader_fuzz::import_snapshot;

fuzz_target!(|data: &[u8]| {
    let _ = import_snapshot(data);
});
