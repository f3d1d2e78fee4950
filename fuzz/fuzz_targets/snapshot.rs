//! The memory-state file loader (`MemoryState::from_bytes`): safetensors with a JSON header,
//! read against a fixed model configuration.
#![no_main]

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use memmamba::MemoryState;
use memreader_fuzz::fuzz_config;

fuzz_target!(|data: &[u8]| {
    let config = fuzz_config();
    if let Ok(state) = MemoryState::from_bytes(&config, data, &Device::Cpu) {
        // A state that loads is whole: it saves again and loads to the same bytes.
        let bytes = state.to_bytes().expect("a loaded state saves");
        let again = MemoryState::from_bytes(&config, &bytes, &Device::Cpu).expect("and loads");
        assert_eq!(again.tokens_read(), state.tokens_read());
    }
});
