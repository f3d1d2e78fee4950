//! What the CPU kernel tests share: random inputs, the closeness check against the reference
//! ops, and the shapes every kernel is tried at.

use candle_core::{DType, Device, Result, Tensor};

const TOL: f32 = 1e-4;

/// Scan shapes (B, L, D, N): L = 1, L coprime to everything, D not a multiple of the channel
/// block.
pub const SCAN_SHAPES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 8, 4),
    (2, 1, 33, 16),
    (1, 37, 16, 16),
    (2, 53, 24, 16),
    (2, 101, 5, 3),
];

/// Conv shapes (B, L, D, K): L = 1 and L shorter than the kernel, K = 1 (no state) to K = 4,
/// D not a multiple of the channel block.
pub const CONV_SHAPES: [(usize, usize, usize, usize); 6] = [
    (1, 1, 8, 4),
    (2, 2, 33, 4),
    (1, 37, 16, 4),
    (2, 53, 24, 3),
    (2, 101, 5, 2),
    (2, 19, 7, 1),
];

pub fn randn(shape: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, shape, &Device::Cpu)
}

/// Asserts that `a` and `b` have the same shape and differ by less than 1e-4 anywhere.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    if a.elem_count() == 0 {
        return Ok(()); // e.g. the (B, D, 0) conv state of a width-1 kernel
    }
    let diff = (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()?;
    assert!(diff < TOL, "{what}: max abs diff {diff} >= {TOL}");
    Ok(())
}
