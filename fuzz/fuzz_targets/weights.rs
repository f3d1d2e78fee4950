//! The weights file loader (`MemMamba::weights_from_bytes`): safetensors with the config in
//! its metadata, read against a fixed model configuration.
#![no_main]

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use memmamba::MemMamba;
use memreader_fuzz::fuzz_config;

fuzz_target!(|data: &[u8]| {
    let _ = MemMamba::weights_from_bytes(&fuzz_config(), data, &Device::Cpu);
});
