//! Helpers shared by the model's specification tests.
#![allow(dead_code)] // each test binary uses its own subset

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use memmamba::{Config, MemMamba, PoolPolicy};

/// The tiny preset with a low note threshold, so that most tokens write notes and the 4-slot
/// pools overflow within a few chunks.
pub fn busy_tiny(policy: PoolPolicy) -> Config {
    Config {
        tau1: 0.3,
        pool_policy: policy,
        ..Config::tiny()
    }
}

/// A freshly initialised model for `cfg` on the CPU.
pub fn model(cfg: &Config) -> MemMamba {
    MemMamba::init(cfg, &VarMap::new(), &Device::Cpu, 0).unwrap()
}

/// `batch` rows of `len` pseudo-random token ids below `vocab`, fixed by `seed`.
pub fn tokens(batch: usize, len: usize, vocab: usize, seed: u64) -> Tensor {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let ids: Vec<u32> = (0..batch * len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % vocab as u64) as u32
        })
        .collect();
    Tensor::from_vec(ids, (batch, len), &Device::Cpu).unwrap()
}

/// Largest absolute elementwise difference.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
