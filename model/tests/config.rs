//! Specification of the model configuration (MODEL.md sections 2 and 3).

use memmamba::{Config, ConfigError, PoolPolicy, PRESET_NAMES};

type Mutation = (&'static str, fn(&mut Config));

/// One change per field, each naming the field it touches.
const CHANGES: [Mutation; 21] = [
    ("vocab_size", |c| c.vocab_size += 1),
    ("d_model", |c| c.d_model += 4),
    ("n_layer", |c| c.n_layer += 1),
    ("d_state", |c| c.d_state += 1),
    ("d_conv", |c| c.d_conv += 1),
    ("expand", |c| c.expand += 1),
    ("dt_rank", |c| c.dt_rank += 1),
    ("dt_min", |c| c.dt_min *= 0.5),
    ("dt_max", |c| c.dt_max *= 2.0),
    ("dt_init_floor", |c| c.dt_init_floor *= 2.0),
    ("rms_norm_eps", |c| c.rms_norm_eps *= 2.0),
    ("notes", |c| c.notes = !c.notes),
    ("cross_layer", |c| c.cross_layer = !c.cross_layer),
    ("pool_policy", |c| c.pool_policy = PoolPolicy::Fifo),
    ("pool_slots", |c| c.pool_slots += 1),
    ("d_note", |c| c.d_note += c.heads),
    ("heads", |c| c.heads *= 2),
    ("chunk", |c| c.chunk += 1),
    ("cross_layer_period", |c| c.cross_layer_period += 1),
    ("tau1", |c| c.tau1 = 0.25),
    ("tau2", |c| c.tau2 = 0.25),
];

/// Plain Mamba-1 count computed independently of `parameter_count`.
fn plain_mamba_count(c: &Config) -> usize {
    let (d, di, n, r) = (c.d_model, c.expand * c.d_model, c.d_state, c.dt_rank);
    let in_proj = d * 2 * di;
    let conv = di * c.d_conv + di;
    let x_proj = di * (r + 2 * n);
    let dt_proj = r * di + di;
    let a_log_and_d = di * n + di;
    let out_proj = di * d;
    let layer = d + in_proj + conv + x_proj + dt_proj + a_log_and_d + out_proj;
    c.vocab_size * d + c.n_layer * layer + d
}

fn invalid_field(c: &Config) -> &'static str {
    match c.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn every_preset_validates_and_is_reachable_by_name() {
    for name in PRESET_NAMES {
        let c = Config::preset(name).unwrap();
        c.validate().unwrap();
    }
    assert_eq!(Config::preset("tiny").unwrap(), Config::tiny());
    assert_eq!(Config::preset("small").unwrap(), Config::small());
    assert_eq!(Config::preset("base").unwrap(), Config::base());
}

#[test]
fn presets_use_model_md_defaults() {
    let c = Config::small();
    assert_eq!((c.d_state, c.d_conv, c.expand), (16, 4, 2));
    assert_eq!(c.dt_rank, Config::default_dt_rank(c.d_model));
    assert_eq!((c.pool_slots, c.d_note, c.heads, c.chunk), (64, 64, 4, 64));
    assert_eq!(c.cross_layer_period, 4);
    assert_eq!((c.tau1, c.tau2), (0.5, 0.1));
    assert_eq!(c.pool_policy, PoolPolicy::Priority);
    assert!(c.notes && c.cross_layer);
    assert_eq!(Config::base().n_layer, 24);
}

#[test]
fn default_dt_rank_is_ceil_of_d_over_16() {
    assert_eq!(Config::default_dt_rank(16), 1);
    assert_eq!(Config::default_dt_rank(17), 2);
    assert_eq!(Config::default_dt_rank(768), 48);
}

#[test]
fn tiny_is_small_enough_to_overflow_and_cross_chunks_quickly() {
    let c = Config::tiny();
    assert_eq!(c.vocab_size, 256);
    assert!(c.pool_slots <= 8 && c.chunk <= 8);
    assert!(c.is_cross_layer(c.n_layer - 1));
}

#[test]
fn small_has_20_to_30_million_parameters_and_base_at_least_100_million() {
    let small = Config::small().parameter_count();
    assert!((20_000_000..=30_000_000).contains(&small), "small: {small}");
    let base = Config::base().parameter_count();
    assert!(base >= 100_000_000, "base: {base}");
}

#[test]
fn notes_off_counts_exactly_plain_mamba() {
    for name in PRESET_NAMES {
        let mut c = Config::preset(name).unwrap();
        c.notes = false;
        assert_eq!(c.parameter_count(), plain_mamba_count(&c), "{name}");
        assert!((0..c.n_layer).all(|l| !c.is_cross_layer(l)));
    }
}

#[test]
fn notes_add_the_note_block_and_cross_layer_adds_a_second_attention_and_gate() {
    let c = Config::tiny();
    let (d, n, q) = (c.d_model, c.d_note, c.d_model / 4);
    let attention = d * n + 2 * n * n + n * d;
    let gate = 2 * d + 1;
    let note_block = (d * q + q) + (q + 1) + d * n + attention + gate;
    let cross_layers = (0..c.n_layer).filter(|&l| c.is_cross_layer(l)).count();
    assert_eq!(cross_layers, 1);
    assert_eq!(
        c.parameter_count(),
        plain_mamba_count(&c) + c.n_layer * note_block + cross_layers * (attention + gate)
    );
    let mut no_cross = c.clone();
    no_cross.cross_layer = false;
    assert_eq!(
        c.parameter_count() - no_cross.parameter_count(),
        attention + gate
    );
}

#[test]
fn json_round_trip_preserves_everything() {
    for name in PRESET_NAMES {
        let mut c = Config::preset(name).unwrap();
        c.pool_policy = PoolPolicy::Fifo;
        let json = c.to_json_string();
        let back = Config::from_json_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.to_json_string(), json);
    }
}

#[test]
fn pool_policy_is_lowercase_in_json() {
    let mut c = Config::tiny();
    assert!(c.to_json_string().contains(r#""pool_policy":"priority""#));
    c.pool_policy = PoolPolicy::Fifo;
    assert!(c.to_json_string().contains(r#""pool_policy":"fifo""#));
}

#[test]
fn from_json_str_rejects_malformed_and_invalid_configs() {
    assert!(matches!(
        Config::from_json_str("{not json"),
        Err(ConfigError::Json(_))
    ));
    let mut c = Config::tiny();
    c.chunk = 0;
    let json = c.to_json_string();
    assert!(matches!(
        Config::from_json_str(&json),
        Err(ConfigError::Invalid { field: "chunk", .. })
    ));
}

#[test]
fn unknown_preset_error_lists_the_known_names() {
    let err = Config::preset("huge").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownPreset { .. }));
    let msg = err.to_string();
    assert!(msg.contains("huge"), "{msg}");
    for name in PRESET_NAMES {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn each_invalid_field_is_named_in_the_error() {
    let cases: [Mutation; 20] = [
        ("vocab_size", |c| c.vocab_size = 0),
        ("d_model", |c| c.d_model = 0),
        ("d_model", |c| c.d_model = 3),
        ("n_layer", |c| c.n_layer = 0),
        ("d_state", |c| c.d_state = 0),
        ("d_conv", |c| c.d_conv = 0),
        ("expand", |c| c.expand = 0),
        ("dt_rank", |c| c.dt_rank = 0),
        ("pool_slots", |c| c.pool_slots = 0),
        ("d_note", |c| c.d_note = c.heads + 1),
        ("heads", |c| c.heads = 0),
        ("chunk", |c| c.chunk = 0),
        ("cross_layer_period", |c| c.cross_layer_period = 0),
        ("dt_min", |c| c.dt_min = 0.0),
        ("dt_max", |c| c.dt_max = c.dt_min / 2.0),
        ("rms_norm_eps", |c| c.rms_norm_eps = -1.0),
        ("tau1", |c| c.tau1 = 0.0),
        ("tau1", |c| c.tau1 = 1.0),
        ("tau2", |c| c.tau2 = 1.5),
        ("tau2", |c| c.tau2 = f64::NAN),
    ];
    for (field, mutate) in cases {
        let mut c = Config::tiny();
        mutate(&mut c);
        assert_eq!(invalid_field(&c), field);
        assert!(c.validate().unwrap_err().to_string().contains(field));
    }
}

#[test]
fn fingerprint_is_16_hex_digits_and_stable_across_a_round_trip() {
    let c = Config::small();
    let fp = c.fingerprint();
    assert_eq!(fp.len(), 16);
    assert!(fp.chars().all(|ch| ch.is_ascii_hexdigit()));
    assert_eq!(fp, Config::small().fingerprint());
    let back = Config::from_json_str(&c.to_json_string()).unwrap();
    assert_eq!(back.fingerprint(), fp);
}

#[test]
fn fingerprint_changes_when_any_field_changes() {
    let base = Config::tiny();
    for (field, mutate) in CHANGES {
        let mut c = base.clone();
        mutate(&mut c);
        assert_ne!(c, base, "{field} mutation did not change the config");
        assert_ne!(c.fingerprint(), base.fingerprint(), "{field}");
    }
}
