//! MemMamba: a Mamba-1 language model whose layers write notes into a fixed-size summary pool
//! and read them back with attention (../shared/MODEL.md).
//!
//! - [`MemMamba::forward`]: training, chunked-parallel over (B, L) with autograd.
//! - [`MemMamba::read`] / [`MemMamba::step`]: streaming through a [`MemoryState`], whose size
//!   does not depend on how much was read and which saves to / loads from one safetensors file.
//! - [`MemMamba::init`], [`MemMamba::load`], [`MemMamba::save`]: weights as safetensors.

pub mod alloc;
pub mod attention;
pub mod block;
pub mod config;
pub mod device;
pub mod error;
pub mod mixer;
pub mod model;
pub mod norm;
pub mod notes;
mod parallel;
pub mod pool;
pub mod prompt;
pub mod rng;
mod seeded;
pub mod snapshot;
pub mod state;
pub mod weights;

pub use attention::Gating;
pub use config::{Config, ConfigError, PoolPolicy, PRESET_NAMES};
pub use error::{ModelError, Result};
pub use mixer::{MambaMixer, MixerState};
pub use model::MemMamba;
pub use pool::Slot;
pub use rng::Rng;
pub use state::{LayerAttention, MemoryState, NoteWeight};
