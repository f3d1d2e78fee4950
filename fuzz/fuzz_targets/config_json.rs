//! The model configuration's JSON loader (weights files carry one in their metadata): a
//! configuration that validates must be usable, its sizes and parameter count computable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memmamba::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_json_str(json) {
        let _ = config.d_inner();
        let _ = config.parameter_count();
        let again = Config::from_json_str(&config.to_json_string()).expect("its own JSON reads");
        assert_eq!(again.fingerprint(), config.fingerprint());
    }
});
