//! Model configuration: every hyper-parameter of MODEL.md sections 2 (the Mamba-1 mixer) and
//! 3 (the MemMamba note block, summary pool and attention reads), with named presets, validation,
//! an exact parameter count, JSON (de)serialisation and a stable fingerprint that snapshots use
//! to refuse a state made with another configuration.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Names accepted by [`Config::preset`].
pub const PRESET_NAMES: [&str; 3] = ["tiny", "small", "base"];

/// Upper bounds that [`Config::validate`] enforces, so that every size and the parameter count
/// are computable without overflow and a configuration read from a file cannot ask for an
/// absurd model: widths (d_model, dt_rank, pool_slots, d_note, chunk) at most 2^16, counts
/// (layers, d_state, d_conv, expand, heads, cross_layer_period) at most 2^10, a vocabulary of
/// at most 2^24, and at most 2^36 parameters in all.
const MAX_WIDTH: usize = 1 << 16;
const MAX_COUNT: usize = 1 << 10;
const MAX_VOCAB: usize = 1 << 24;
const MAX_PARAMETERS: usize = 1 << 36;

/// Errors from building, parsing or validating a [`Config`].
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A field holds a value the model cannot use.
    #[error("invalid config field `{field}`: {reason}")]
    Invalid {
        /// The offending field, spelled as in the JSON.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// [`Config::preset`] got a name it does not know.
    #[error("unknown preset `{name}`; known presets: {}", PRESET_NAMES.join(", "))]
    UnknownPreset {
        /// The name that was asked for.
        name: String,
    },
    /// The JSON text could not be parsed or written.
    #[error("config JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How a full summary pool admits a new note (MODEL.md section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolPolicy {
    /// Overwrite the lowest-score slot if the new note scores higher, else drop the note.
    Priority,
    /// Overwrite the oldest slot.
    Fifo,
}

/// The full model configuration. Field names are the JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Vocabulary size; the embedding is tied to the LM head.
    pub vocab_size: usize,
    /// Residual stream width d.
    pub d_model: usize,
    /// Number of layers.
    pub n_layer: usize,
    /// SSM state size N.
    pub d_state: usize,
    /// Causal depthwise convolution kernel width.
    pub d_conv: usize,
    /// Mixer expansion: `d_inner = expand * d_model`.
    pub expand: usize,
    /// Rank R of the dt projection; by default [`Config::default_dt_rank`].
    pub dt_rank: usize,
    /// Lower end of the log-uniform dt initialisation range.
    pub dt_min: f64,
    /// Upper end of the log-uniform dt initialisation range.
    pub dt_max: f64,
    /// Initial dt values are clamped from below to this floor.
    pub dt_init_floor: f64,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// MemMamba notes, pool and attention reads; off gives the plain Mamba-1 baseline.
    pub notes: bool,
    /// Cross-layer attention on layers with `(l + 1) % cross_layer_period == 0`
    /// (only meaningful when `notes` is on).
    pub cross_layer: bool,
    /// Admission policy of a full pool.
    pub pool_policy: PoolPolicy,
    /// Slots K per layer pool.
    pub pool_slots: usize,
    /// Width of a note.
    pub d_note: usize,
    /// Attention heads H; must divide `d_note`.
    pub heads: usize,
    /// Commit period C in tokens.
    pub chunk: usize,
    /// Cross-layer period p.
    pub cross_layer_period: usize,
    /// Note threshold tau1 on the importance score, in (0, 1).
    pub tau1: f64,
    /// Inference gate threshold tau2, in (0, 1).
    pub tau2: f64,
}

impl Config {
    /// `ceil(d_model / 16)`, the Mamba-1 default dt rank.
    pub fn default_dt_rank(d_model: usize) -> usize {
        d_model.div_ceil(16)
    }

    /// A configuration with the MODEL.md defaults for everything but the given sizes.
    fn with_sizes(vocab_size: usize, d_model: usize, n_layer: usize) -> Self {
        Self {
            vocab_size,
            d_model,
            n_layer,
            d_state: 16,
            d_conv: 4,
            expand: 2,
            dt_rank: Self::default_dt_rank(d_model),
            dt_min: 1e-3,
            dt_max: 1e-1,
            dt_init_floor: 1e-4,
            rms_norm_eps: 1e-5,
            notes: true,
            cross_layer: true,
            pool_policy: PoolPolicy::Priority,
            pool_slots: 64,
            d_note: 64,
            heads: 4,
            chunk: 64,
            cross_layer_period: 4,
            tau1: 0.5,
            tau2: 0.1,
        }
    }

    /// A very small model for tests: byte vocabulary, d 32, 2 layers, and a pool of 4 slots
    /// committed every 4 tokens so overflow and chunk boundaries are hit after a few tokens.
    /// The cross-layer period is 2, so the second layer reads across both pools.
    pub fn tiny() -> Self {
        Self {
            d_state: 8,
            pool_slots: 4,
            d_note: 16,
            heads: 2,
            chunk: 4,
            cross_layer_period: 2,
            ..Self::with_sizes(256, 32, 2)
        }
    }

    /// About 27M parameters with a 16384-token vocabulary: d 512, 10 layers, MODEL.md defaults.
    pub fn small() -> Self {
        Self::with_sizes(16384, 512, 10)
    }

    /// About 111M parameters with a 16384-token vocabulary: d 768, 24 layers (as in the paper).
    pub fn base() -> Self {
        Self::with_sizes(16384, 768, 24)
    }

    /// The preset called `name` (one of [`PRESET_NAMES`]).
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "small" => Ok(Self::small()),
            "base" => Ok(Self::base()),
            _ => Err(ConfigError::UnknownPreset {
                name: name.to_string(),
            }),
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        }
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("expand", self.expand),
            ("dt_rank", self.dt_rank),
            ("pool_slots", self.pool_slots),
            ("d_note", self.d_note),
            ("heads", self.heads),
            ("chunk", self.chunk),
            ("cross_layer_period", self.cross_layer_period),
        ];
        if self.d_model < 4 {
            return bad(
                "d_model",
                "must be at least 4 (the note scorer is d -> d/4 -> 1)",
            );
        }
        for (field, value) in positive {
            if value == 0 {
                return bad(field, "must be positive");
            }
        }
        for (field, value, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("d_model", self.d_model, MAX_WIDTH),
            ("n_layer", self.n_layer, MAX_COUNT),
            ("d_state", self.d_state, MAX_COUNT),
            ("d_conv", self.d_conv, MAX_COUNT),
            ("expand", self.expand, MAX_COUNT),
            ("dt_rank", self.dt_rank, MAX_WIDTH),
            ("pool_slots", self.pool_slots, MAX_WIDTH),
            ("d_note", self.d_note, MAX_WIDTH),
            ("heads", self.heads, MAX_COUNT),
            ("chunk", self.chunk, MAX_WIDTH),
            ("cross_layer_period", self.cross_layer_period, MAX_COUNT),
        ] {
            if value > max {
                return bad(field, format!("{value} is over the limit of {max}"));
            }
        }
        if self.parameter_count() > MAX_PARAMETERS {
            return bad(
                "d_model",
                format!(
                    "the model would have {} parameters, over the limit of {MAX_PARAMETERS}",
                    self.parameter_count()
                ),
            );
        }
        if !self.d_note.is_multiple_of(self.heads) {
            return bad(
                "d_note",
                format!("{} is not divisible by heads = {}", self.d_note, self.heads),
            );
        }
        for (field, value) in [
            ("dt_min", self.dt_min),
            ("dt_init_floor", self.dt_init_floor),
            ("rms_norm_eps", self.rms_norm_eps),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(field, format!("{value} must be finite and positive"));
            }
        }
        if !(self.dt_max.is_finite() && self.dt_max >= self.dt_min) {
            return bad(
                "dt_max",
                format!(
                    "{} must be finite and >= dt_min = {}",
                    self.dt_max, self.dt_min
                ),
            );
        }
        for (field, value) in [("tau1", self.tau1), ("tau2", self.tau2)] {
            if !(value > 0.0 && value < 1.0) {
                return bad(field, format!("{value} is not in (0, 1)"));
            }
        }
        Ok(())
    }

    /// Width of the mixer's inner stream, `expand * d_model`.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// Whether layer `l` (0-based) has cross-layer attention: notes and cross-layer on and
    /// `(l + 1) % cross_layer_period == 0`.
    pub fn is_cross_layer(&self, l: usize) -> bool {
        self.notes && self.cross_layer && (l + 1).is_multiple_of(self.cross_layer_period)
    }

    /// Exact number of trainable scalars.
    ///
    /// - Embedding `vocab_size * d_model`, tied to the LM head (counted once); final RMSNorm `d`.
    /// - Per layer, Mamba-1 (MODEL.md section 2), with `di = d_inner`, `N = d_state`,
    ///   `R = dt_rank`: RMSNorm weight `d`; in_proj `d * 2di`; conv weight `di * d_conv` plus
    ///   bias `di`; x_proj `di * (R + 2N)`; dt_proj weight `R * di` plus bias `di`;
    ///   A_log `di * N`; D `di`; out_proj `di * d`. No other biases.
    /// - Per layer with `notes` on (section 3), with `q = d/4` (floor) and `n = d_note`:
    ///   scorer W1 `d * q + q`, w2 `q + 1`; W_n `d * n`; token attention W_q `d * n`,
    ///   W_k and W_v `n * n` each, W_o `n * d`, all without bias; gate W_g `2d + 1`.
    /// - On cross-layer layers ([`Config::is_cross_layer`]) a second attention
    ///   (W_q, W_k, W_v, W_o as above) and a second gate (`2d + 1`), reading the notes of
    ///   the last `cross_layer_period` layers, which share the width `d_note`.
    pub fn parameter_count(&self) -> usize {
        let d = self.d_model;
        let di = self.d_inner();
        let n_state = self.d_state;
        let r = self.dt_rank;
        let mamba = d
            + d * 2 * di
            + di * self.d_conv
            + di
            + di * (r + 2 * n_state)
            + r * di
            + di
            + di * n_state
            + di
            + di * d;
        let n = self.d_note;
        let q = d / 4;
        let attention = d * n + 2 * n * n + n * d;
        let gate = 2 * d + 1;
        let note_block = d * q + q + q + 1 + d * n + attention + gate;
        let per_layer: usize = (0..self.n_layer)
            .map(|l| {
                let mut p = mamba;
                if self.notes {
                    p += note_block;
                }
                if self.is_cross_layer(l) {
                    p += attention + gate;
                }
                p
            })
            .sum();
        self.vocab_size * d + per_layer + d
    }

    /// Parses and validates a JSON configuration. A value that does not read back the same
    /// from the configuration's own JSON is refused (serde_json may parse a decimal written
    /// with more digits than an f64 holds, or a subnormal one, a unit in the last place off),
    /// so that a configuration read here keeps its fingerprint when it is saved and read again.
    pub fn from_json_str(s: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(s)?;
        config.validate()?;
        let again: Self = serde_json::from_str(&config.to_json_string())?;
        let floats = |c: &Self| {
            [
                ("dt_min", c.dt_min),
                ("dt_max", c.dt_max),
                ("dt_init_floor", c.dt_init_floor),
                ("rms_norm_eps", c.rms_norm_eps),
                ("tau1", c.tau1),
                ("tau2", c.tau2),
            ]
        };
        let unstable = floats(&config)
            .into_iter()
            .zip(floats(&again))
            .find(|((_, a), (_, b))| a.to_bits() != b.to_bits());
        if let Some(((field, value), _)) = unstable {
            return Err(ConfigError::Invalid {
                field,
                reason: format!("{value:e} does not read back the same from JSON; round it"),
            });
        }
        Ok(config)
    }

    /// The canonical JSON: compact, fields in declaration order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).expect("a Config always serialises to JSON")
    }

    /// 64-bit FNV-1a hash of [`Config::to_json_string`], as 16 lowercase hex digits.
    pub fn fingerprint(&self) -> String {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = self
            .to_json_string()
            .bytes()
            .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        format!("{hash:016x}")
    }
}
