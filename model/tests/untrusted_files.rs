//! Model files are untrusted input: a crafted memory state, weights file or configuration ends
//! in an error, never in a panic or an allocation the file's size does not justify. Each case
//! is a fuzzing finding (scripts/fuzz.sh; the input under tests/fuzz/) or a crafted attack.

mod common;

use std::collections::HashMap;

use candle_core::Device;
use common::{model, tokens};
use memmamba::snapshot::STATE_KEY;
use memmamba::{Config, MemoryState};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// A tiny model's state after 6 tokens, as saved.
fn saved_state() -> (Config, Vec<u8>) {
    let cfg = Config::tiny();
    let m = model(&cfg);
    let mut state = m.new_state(1).unwrap();
    m.read(&mut state, &tokens(1, 6, cfg.vocab_size, 1))
        .unwrap();
    (cfg, state.to_bytes().unwrap())
}

/// The saved file with its JSON header edited by `edit_header` and the tensor `name` replaced
/// by an empty f32 tensor of shape `shape`.
fn edited(
    bytes: &[u8],
    edit_header: impl FnOnce(&mut serde_json::Value),
    name: &str,
    shape: Vec<usize>,
) -> Vec<u8> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap();
    let mut header: serde_json::Value =
        serde_json::from_str(&metadata.metadata().as_ref().unwrap()[STATE_KEY]).unwrap();
    edit_header(&mut header);
    let mut tensors: Vec<(String, TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != name)
        .collect();
    tensors.push((
        name.to_owned(),
        TensorView::new(Dtype::F32, shape, &[]).unwrap(),
    ));
    let metadata = HashMap::from([(STATE_KEY.to_owned(), header.to_string())]);
    safetensors::serialize(tensors, Some(metadata)).unwrap()
}

#[test]
fn a_state_whose_batch_its_tensors_do_not_hold_is_refused_before_allocating() {
    // An empty conv tensor of batch 2^40 (zero bytes, since one dimension is 0) and a header
    // that says the same: the loader used to believe them and allocate a state of 2^40 rows.
    let (cfg, bytes) = saved_state();
    let batch = 1usize << 40;
    let crafted = edited(
        &bytes,
        |h| h["batch"] = batch.into(),
        "layers.0.conv",
        vec![batch, 0, cfg.d_conv - 1],
    );
    let err = MemoryState::from_bytes(&cfg, &crafted, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string()
            .contains("the header says batch 1099511627776, the tensor `layers.0.ssm` is"),
        "{err}"
    );
}

#[test]
fn a_state_with_an_empty_ssm_tensor_of_a_huge_batch_is_refused() {
    let (cfg, bytes) = saved_state();
    let batch = 1usize << 40;
    let crafted = edited(
        &bytes,
        |h| h["batch"] = batch.into(),
        "layers.0.ssm",
        vec![batch, 0, cfg.d_state],
    );
    let err = MemoryState::from_bytes(&cfg, &crafted, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("the header says batch"), "{err}");
}

#[test]
fn a_config_value_that_does_not_survive_json_is_refused() {
    // Fuzzing finding: tau1 = 7.0...05e-40 (100 digits) read one unit in the last place away
    // from what its own JSON reads to, so the config changed fingerprint once saved and read.
    let json = include_str!("fuzz/config_json-crash-849c14fd");
    let err = Config::from_json_str(json).unwrap_err();
    assert!(
        err.to_string().contains("invalid config field `tau1`")
            && err
                .to_string()
                .contains("does not read back the same from JSON"),
        "{err}"
    );
    // Every preset reads back to itself.
    for name in memmamba::PRESET_NAMES {
        let config = Config::preset(name).unwrap();
        let again = Config::from_json_str(&config.to_json_string()).unwrap();
        assert_eq!(again.fingerprint(), config.fingerprint());
    }
}

#[test]
fn a_config_with_absurd_sizes_is_refused_not_overflowed() {
    let mut json: serde_json::Value =
        serde_json::from_str(&Config::tiny().to_json_string()).unwrap();
    for (field, value) in [
        ("vocab_size", u64::MAX),
        ("d_model", 1 << 40),
        ("expand", 1 << 62),
        ("pool_slots", 1 << 40),
    ] {
        let mut edited = json.clone();
        edited[field] = value.into();
        let err = Config::from_json_str(&edited.to_string()).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "invalid config field `{field}`: {value} is over the limit"
            )),
            "{err}"
        );
    }
    // Each size within its limit, the whole over the parameter limit.
    json["vocab_size"] = (1u64 << 24).into();
    json["d_model"] = (1u64 << 16).into();
    let err = Config::from_json_str(&json.to_string()).unwrap_err();
    assert!(
        err.to_string()
            .contains("parameters, over the limit of 68719476736"),
        "{err}"
    );
}
