//! MemMamba: a Mamba-1 language model whose layers write notes into a fixed-size summary pool
//! and read them back with attention (../shared/MODEL.md).

pub mod config;
pub mod mixer;
pub mod prompt;

pub use config::{Config, ConfigError, PoolPolicy, PRESET_NAMES};
pub use mixer::{MambaMixer, MixerState};
