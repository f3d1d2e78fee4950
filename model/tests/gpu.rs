//! The full model on a GPU against the CPU (MODEL.md section 5 on another device): the same
//! weights give the same training forward and the same streamed logits and memory, across chunk
//! boundaries and pool overflow.
//!
//! Built without the `cuda` feature, or run without a GPU, each test prints
//! "skipped: no CUDA device" on stderr (visible through the harness's capture) and passes.

mod common;

use std::io::Write;

use candle_core::{Device, IndexOp, Tensor};
use common::{busy_tiny, max_abs_diff, model, tokens};
use memmamba::{Gating, MemMamba, PoolPolicy};

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(dev) => Some(dev),
        Err(e) => {
            // Straight to stderr, past the test harness's capture, so that the skip shows.
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({e})");
            None
        }
    }
}

/// Largest difference between `a` (CPU) and `b` (any device), relative to `a`'s largest value.
fn relative_diff(a: &Tensor, b: &Tensor) -> f32 {
    let b = b.to_device(&Device::Cpu).unwrap();
    let scale = a
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    max_abs_diff(a, &b) / scale.max(1e-6)
}

fn same_model_on_both(policy: PoolPolicy, gpu: &Device) -> (MemMamba, MemMamba) {
    let cfg = busy_tiny(policy);
    let cpu = model(&cfg);
    let on_gpu = MemMamba::weights_from_bytes(&cfg, &cpu.weights_to_bytes().unwrap(), gpu).unwrap();
    (cpu, on_gpu)
}

#[test]
fn the_training_forward_on_the_gpu_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for policy in [PoolPolicy::Priority, PoolPolicy::Fifo] {
        let (cpu, on_gpu) = same_model_on_both(policy, &gpu);
        let toks = tokens(2, 181, cpu.config().vocab_size, 5);
        let a = cpu.forward(&toks).unwrap();
        let b = on_gpu.forward(&toks.to_device(&gpu).unwrap()).unwrap();
        let diff = relative_diff(&a, &b);
        assert!(
            diff < 1e-4,
            "{policy:?}: the GPU's logits differ by {diff} of the largest"
        );
    }
}

#[test]
fn streaming_on_the_gpu_matches_the_cpu_read_by_read() {
    let Some(gpu) = gpu() else { return };
    for policy in [PoolPolicy::Priority, PoolPolicy::Fifo] {
        let (cpu, on_gpu) = same_model_on_both(policy, &gpu);
        let toks = tokens(2, 181, cpu.config().vocab_size, 9);
        let mut on_cpu_state = cpu.new_state(2).unwrap().with_gating(Gating::Sparse);
        let mut on_gpu_state = on_gpu.new_state(2).unwrap().with_gating(Gating::Sparse);
        let mut start = 0;
        while start < 181 {
            let n = 7.min(181 - start);
            let part = toks.narrow(1, start, n).unwrap();
            let a = cpu.read(&mut on_cpu_state, &part).unwrap();
            let b = on_gpu
                .read(&mut on_gpu_state, &part.to_device(&gpu).unwrap())
                .unwrap();
            start += n;
            let diff = relative_diff(&a, &b);
            assert!(
                diff < 1e-4,
                "{policy:?}: token {} differs by {diff}",
                start - 1
            );
        }
        for l in 0..cpu.config().n_layer {
            for row in 0..2 {
                let held = |state: &memmamba::MemoryState| -> Vec<(bool, u64)> {
                    let slots = state.pool_slots(l, row).unwrap();
                    slots.iter().map(|s| (s.valid, s.position)).collect()
                };
                assert_eq!(
                    held(&on_cpu_state),
                    held(&on_gpu_state),
                    "{policy:?}: layer {l}, row {row}: the pools hold different notes"
                );
            }
        }
        // The GPU's state saves and loads on the CPU, and reads on from there the same.
        let bytes = on_gpu_state.to_bytes().unwrap();
        let mut moved =
            memmamba::MemoryState::from_bytes(cpu.config(), &bytes, &Device::Cpu).unwrap();
        let next = toks.i((.., ..5)).unwrap();
        let a = cpu.read(&mut on_cpu_state, &next).unwrap();
        let b = cpu.read(&mut moved, &next).unwrap();
        assert!(
            relative_diff(&a, &b) < 1e-4,
            "{policy:?}: the moved state reads differently"
        );
    }
}
