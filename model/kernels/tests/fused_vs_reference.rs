//! The fused kernels must agree with the unfused reference ops, including when a sequence is
//! processed in chunks that carry the state (`h_last`, `next_prev`) from one call to the next.

mod common;

use std::time::Instant;

use candle_core::{DType, Result, Tensor};
use common::{assert_close, randn, CONV_SHAPES, SCAN_SHAPES};
use memmamba_kernels::{causal_conv1d, reference, selective_scan};

/// Random scan inputs: x, dt > 0, a < 0, b, c.
struct ScanInputs {
    x: Tensor,
    dt: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
}

fn scan_inputs(batch: usize, len: usize, dim: usize, n: usize) -> Result<ScanInputs> {
    Ok(ScanInputs {
        x: randn(&[batch, len, dim])?,
        dt: ((randn(&[batch, len, dim])? * 0.5)? - 2.0)?.exp()?,
        a: ((randn(&[dim, n])? * 0.5)?.exp()? * -1.0)?,
        b: randn(&[batch, len, n])?,
        c: randn(&[batch, len, n])?,
    })
}

fn check_scan(batch: usize, len: usize, dim: usize, n: usize, with_h0: bool) -> Result<()> {
    let s = scan_inputs(batch, len, dim, n)?;
    let h0 = if with_h0 {
        Some(randn(&[batch, dim, n])?)
    } else {
        None
    };
    let what = format!("scan B={batch} L={len} D={dim} N={n} h0={with_h0}");
    let (y, h) = selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, h0.as_ref())?;
    let (y_ref, h_ref) = reference::selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, h0.as_ref())?;
    assert_close(&format!("{what} y"), &y, &y_ref)?;
    assert_close(&format!("{what} h_last"), &h, &h_ref)
}

fn check_conv(batch: usize, len: usize, dim: usize, k: usize, with_prev: bool) -> Result<()> {
    let x = randn(&[batch, len, dim])?;
    let w = randn(&[dim, k])?;
    let bias = randn(&[dim])?;
    let prev = if with_prev {
        Some(randn(&[batch, dim, k - 1])?)
    } else {
        None
    };
    let what = format!("conv B={batch} L={len} D={dim} K={k} prev={with_prev}");
    let (y, p) = causal_conv1d(&x, &w, &bias, prev.as_ref())?;
    let (y_ref, p_ref) = reference::causal_conv1d(&x, &w, &bias, prev.as_ref())?;
    assert_close(&format!("{what} y"), &y, &y_ref)?;
    assert_close(&format!("{what} next_prev"), &p, &p_ref)
}

#[test]
fn scan_matches_reference_on_several_shapes() -> Result<()> {
    for (batch, len, dim, n) in SCAN_SHAPES {
        check_scan(batch, len, dim, n, false)?;
        check_scan(batch, len, dim, n, true)?;
    }
    Ok(())
}

#[test]
fn conv_matches_reference_on_several_shapes() -> Result<()> {
    for (batch, len, dim, k) in CONV_SHAPES {
        check_conv(batch, len, dim, k, false)?;
        check_conv(batch, len, dim, k, true)?;
    }
    Ok(())
}

#[test]
fn chunked_scan_equals_one_call() -> Result<()> {
    let (batch, len, dim, n, split) = (2, 61, 20, 16, 23);
    let s = scan_inputs(batch, len, dim, n)?;
    let part = |t: &Tensor, start: usize, l: usize| t.narrow(1, start, l);
    let chunk = |start: usize, l: usize, h: Option<&Tensor>| {
        selective_scan(
            &part(&s.x, start, l)?,
            &part(&s.dt, start, l)?,
            &s.a,
            &part(&s.b, start, l)?,
            &part(&s.c, start, l)?,
            h,
        )
    };
    let (y1, h1) = chunk(0, split, None)?;
    let (y2, h2) = chunk(split, len - split, Some(&h1))?;
    let y_chunked = Tensor::cat(&[&y1, &y2], 1)?;

    let (y, h) = selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, None)?;
    assert_close("chunked scan y vs one call", &y_chunked, &y)?;
    assert_close("chunked scan h_last vs one call", &h2, &h)?;
    let (y_ref, h_ref) = reference::selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, None)?;
    assert_close("chunked scan y vs reference", &y_chunked, &y_ref)?;
    assert_close("chunked scan h_last vs reference", &h2, &h_ref)
}

#[test]
fn chunked_conv_equals_one_call() -> Result<()> {
    let (batch, len, dim, k, split) = (2, 47, 20, 4, 2);
    let x = randn(&[batch, len, dim])?;
    let w = randn(&[dim, k])?;
    let bias = randn(&[dim])?;
    let (y1, p1) = causal_conv1d(&x.narrow(1, 0, split)?, &w, &bias, None)?;
    let (y2, p2) = causal_conv1d(&x.narrow(1, split, len - split)?, &w, &bias, Some(&p1))?;
    let y_chunked = Tensor::cat(&[&y1, &y2], 1)?;

    let (y, p) = causal_conv1d(&x, &w, &bias, None)?;
    assert_close("chunked conv y vs one call", &y_chunked, &y)?;
    assert_close("chunked conv next_prev vs one call", &p2, &p)?;
    let (y_ref, p_ref) = reference::causal_conv1d(&x, &w, &bias, None)?;
    assert_close("chunked conv y vs reference", &y_chunked, &y_ref)?;
    assert_close("chunked conv next_prev vs reference", &p2, &p_ref)
}

#[test]
fn non_contiguous_f64_inputs_are_converted() -> Result<()> {
    let (batch, len, dim, n) = (2, 9, 6, 4);
    let s = scan_inputs(batch, len, dim, n)?;
    // x given as the transpose of a (B, D, L) tensor, everything in f64.
    let x_t = s.x.transpose(1, 2)?.contiguous()?.to_dtype(DType::F64)?;
    let x = x_t.transpose(1, 2)?;
    assert!(!x.is_contiguous());
    let f64 = |t: &Tensor| t.to_dtype(DType::F64);
    let (y, h) = selective_scan(
        &x,
        &f64(&s.dt)?,
        &f64(&s.a)?,
        &f64(&s.b)?,
        &f64(&s.c)?,
        None,
    )?;
    assert_eq!((y.dtype(), h.dtype()), (DType::F64, DType::F64));
    let (y_ref, h_ref) = reference::selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, None)?;
    assert_close("f64 scan y", &y.to_dtype(DType::F32)?, &y_ref)?;
    assert_close("f64 scan h_last", &h.to_dtype(DType::F32)?, &h_ref)
}

/// Prints fused vs reference wall time at a realistic size. Run with
/// `cargo test -p memmamba-kernels --test fused_vs_reference -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_b1_l2048_d512_n16() -> Result<()> {
    let (batch, len, dim, n, k) = (1, 2048, 512, 16, 4);
    let s = scan_inputs(batch, len, dim, n)?;
    let w = randn(&[dim, k])?;
    let bias = randn(&[dim])?;
    let time = |f: &dyn Fn() -> Result<(Tensor, Tensor)>| -> Result<f64> {
        f()?; // warm-up
        let start = Instant::now();
        let reps = 3;
        for _ in 0..reps {
            f()?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e3 / f64::from(reps))
    };
    let fused = time(&|| selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, None))?;
    let unfused = time(&|| reference::selective_scan(&s.x, &s.dt, &s.a, &s.b, &s.c, None))?;
    println!("selective_scan B={batch} L={len} D={dim} N={n}: fused {fused:.2} ms, reference {unfused:.2} ms");
    let fused = time(&|| causal_conv1d(&s.x, &w, &bias, None))?;
    let unfused = time(&|| reference::causal_conv1d(&s.x, &w, &bias, None))?;
    println!("causal_conv1d  B={batch} L={len} D={dim} K={k}: fused {fused:.2} ms, reference {unfused:.2} ms");
    Ok(())
}
