//! Backpropagating through the fused ops gives the same gradients as candle autograd through the
//! unfused reference ops: for random small inputs and random weights `r`, `s`, the gradients of
//! `sum(y * r) + sum(state * s)` w.r.t. every input agree, with and without an initial state.
//! Gathering rows backpropagates as candle's `index_select` does, rows read many times included.

use candle_core::{DType, Device, Result, Tensor, Var};
use memmamba_kernels::{causal_conv1d, gather_rows, reference, selective_scan};

/// Tolerance on the max abs diff of two gradients, relative to the larger of 1 and their scale.
const TOL: f32 = 1e-3;

fn randn(shape: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, shape, &Device::Cpu)
}

fn max_abs(t: &Tensor) -> Result<f32> {
    if t.elem_count() == 0 {
        return Ok(0.0); // the (B, D, 0) conv state of a width-1 kernel
    }
    t.abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()
}

/// Asserts that the fused and reference gradients of `var` agree.
fn assert_grad_close(what: &str, fused: &Tensor, reference: &Tensor) -> Result<()> {
    assert_eq!(fused.dims(), reference.dims(), "{what}: gradient shapes");
    let diff = max_abs(&(fused - reference)?)?;
    let scale = max_abs(reference)?.max(1.0);
    assert!(
        diff < TOL * scale,
        "{what}: max abs diff {diff} >= {TOL} * scale {scale}"
    );
    Ok(())
}

/// `sum(y * r) + sum(state * s)`, the scalar loss whose gradients are compared.
fn loss(y: &Tensor, state: &Tensor, r: &Tensor, s: &Tensor) -> Result<Tensor> {
    (y * r)?.sum_all()? + (state * s)?.sum_all()?
}

/// Gradients of the loss w.r.t. each of `vars`, in order (zeros where a var gets none).
fn grads_of(loss: &Tensor, vars: &[&Var]) -> Result<Vec<Tensor>> {
    let store = loss.backward()?;
    vars.iter()
        .map(|v| match store.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.as_tensor().zeros_like(),
        })
        .collect()
}

fn check_scan_grads(batch: usize, len: usize, dim: usize, n: usize, with_h0: bool) -> Result<()> {
    let x = Var::from_tensor(&randn(&[batch, len, dim])?)?;
    let dt = Var::from_tensor(&((randn(&[batch, len, dim])? * 0.5)? - 2.0)?.exp()?)?;
    let a = Var::from_tensor(&((randn(&[dim, n])? * 0.5)?.exp()? * -1.0)?)?;
    let b = Var::from_tensor(&randn(&[batch, len, n])?)?;
    let c = Var::from_tensor(&randn(&[batch, len, n])?)?;
    let h0 = Var::from_tensor(&randn(&[batch, dim, n])?)?;
    let r = randn(&[batch, len, dim])?;
    let s = randn(&[batch, dim, n])?;
    let h0_arg = with_h0.then(|| h0.as_tensor());
    let vars = [&x, &dt, &a, &b, &c, &h0];

    let (y, h) = selective_scan(&x, &dt, &a, &b, &c, h0_arg)?;
    let fused = grads_of(&loss(&y, &h, &r, &s)?, &vars)?;
    let (y, h) = reference::selective_scan(&x, &dt, &a, &b, &c, h0_arg)?;
    let expected = grads_of(&loss(&y, &h, &r, &s)?, &vars)?;

    let what = format!("scan B={batch} L={len} D={dim} N={n} h0={with_h0}");
    for (name, (f, e)) in ["x", "dt", "a", "b", "c", "h0"]
        .iter()
        .zip(fused.iter().zip(&expected))
    {
        assert_grad_close(&format!("{what} d{name}"), f, e)?;
    }
    Ok(())
}

fn check_conv_grads(batch: usize, len: usize, dim: usize, k: usize, with_prev: bool) -> Result<()> {
    let x = Var::from_tensor(&randn(&[batch, len, dim])?)?;
    let w = Var::from_tensor(&randn(&[dim, k])?)?;
    let bias = Var::from_tensor(&randn(&[dim])?)?;
    let prev = Var::from_tensor(&randn(&[batch, dim, k - 1])?)?;
    let r = randn(&[batch, len, dim])?;
    let s = randn(&[batch, dim, k - 1])?;
    let prev_arg = with_prev.then(|| prev.as_tensor());
    let vars = [&x, &w, &bias, &prev];

    let (y, p) = causal_conv1d(&x, &w, &bias, prev_arg)?;
    let fused = grads_of(&loss(&y, &p, &r, &s)?, &vars)?;
    let (y, p) = reference::causal_conv1d(&x, &w, &bias, prev_arg)?;
    let expected = grads_of(&loss(&y, &p, &r, &s)?, &vars)?;

    let what = format!("conv B={batch} L={len} D={dim} K={k} prev={with_prev}");
    for (name, (f, e)) in ["x", "w", "bias", "prev"]
        .iter()
        .zip(fused.iter().zip(&expected))
    {
        assert_grad_close(&format!("{what} d{name}"), f, e)?;
    }
    Ok(())
}

#[test]
fn scan_gradients_match_reference_autograd() -> Result<()> {
    // (B, L, D, N): L = 1, D below, at and above the channel block, N = 3 to 16.
    for &(batch, len, dim, n) in &[(2, 1, 5, 3), (2, 7, 16, 16), (2, 23, 9, 4), (2, 40, 13, 8)] {
        check_scan_grads(batch, len, dim, n, false)?;
        check_scan_grads(batch, len, dim, n, true)?;
    }
    Ok(())
}

#[test]
fn conv_gradients_match_reference_autograd() -> Result<()> {
    // (B, L, D, K): L = 1 and L shorter than the kernel, K = 1 (no state) to K = 4.
    for &(batch, len, dim, k) in &[
        (2, 1, 5, 4),
        (2, 2, 16, 4),
        (2, 17, 7, 3),
        (2, 40, 11, 2),
        (2, 19, 6, 1),
    ] {
        check_conv_grads(batch, len, dim, k, false)?;
        check_conv_grads(batch, len, dim, k, true)?;
    }
    Ok(())
}

/// Indices into `rows` rows, `count` of them, every row read several times and some never.
fn repeating_indices(rows: usize, count: usize) -> Result<Tensor> {
    let index: Vec<u32> = (0..count)
        .map(|i| ((i * 7 + i / 3) % (rows - 1)) as u32)
        .collect();
    Tensor::from_vec(index, count, &Device::Cpu)
}

#[test]
fn gathered_rows_backpropagate_as_index_select_does() -> Result<()> {
    // (R, W, M): fewer indices than rows, and many more (rows read up to a dozen times).
    for &(rows, width, count) in &[(9, 5, 4), (12, 129, 150), (33, 3, 400)] {
        let table = Var::from_tensor(&randn(&[rows, width])?)?;
        let index = repeating_indices(rows, count)?;
        let r = randn(&[count, width])?;
        let loss = |rows: Tensor| (rows * &r)?.sum_all();

        let gathered = gather_rows(&table, &index)?;
        assert_eq!(
            gathered.to_vec2::<f32>()?,
            table.index_select(&index, 0)?.to_vec2::<f32>()?,
            "R={rows} W={width} M={count}: forward"
        );
        let fused = grads_of(&loss(gathered)?, &[&table])?;
        let expected = grads_of(&loss(table.index_select(&index, 0)?)?, &[&table])?;
        let what = format!("gather R={rows} W={width} M={count} dtable");
        assert_grad_close(&what, &fused[0], &expected[0])?;
        // the last row is never read, so it gets no gradient
        assert_eq!(
            max_abs(&fused[0].get(rows - 1)?)?,
            0.0,
            "{what}: unread row"
        );
    }
    Ok(())
}

#[test]
fn gathering_rows_refuses_indices_that_are_not_u32() -> Result<()> {
    let table = randn(&[4, 2])?;
    let index = Tensor::new(&[0i64, 1], &Device::Cpu)?;
    let err = gather_rows(&table, &index).unwrap_err().to_string();
    assert!(err.contains("u32"), "{err}");
    Ok(())
}
