//! The CPU inference paths (`infer`) compute what the unfused composition of the reference ops
//! computes: `silu(conv)`, and the scan over `softplus(dt + dt_bias)` followed by the D skip and
//! the gate by `silu(z)`; multi-head attention with masks and a softmax; the gate of a read added to the residual stream; the importance scorer after its first matmul. Their slice arguments are taken, as in the mixer, from wider tensors.

mod common;

use candle_core::{DType, Device, Result, Tensor};
use common::{assert_close, randn, CONV_SHAPES, SCAN_SHAPES};
use memmamba_kernels::infer::{
    causal_conv1d_silu, gate_add, gated_scan, note_attention, note_log_scores, GatedScanArgs,
};
use memmamba_kernels::reference;

/// `parts` tensors (B, L, widths[i]) as slices of the last dimension of one (B, L, sum) tensor,
/// which is how the mixer's x, z (in_proj) and dt, b, c (x_proj) arrive.
fn slices_of_one(batch: usize, len: usize, widths: &[usize]) -> Result<Vec<Tensor>> {
    let whole = randn(&[batch, len, widths.iter().sum()])?;
    let mut at = 0;
    widths
        .iter()
        .map(|&w| {
            at += w;
            whole.narrow(2, at - w, w)
        })
        .collect()
}

/// `max(x, 0) + ln(1 + exp(-|x|))`, as the mixer's unfused path computes it.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

fn check_conv(batch: usize, len: usize, dim: usize, k: usize, with_prev: bool) -> Result<()> {
    let x = slices_of_one(batch, len, &[dim, dim])?.remove(0);
    let (w, bias) = (randn(&[dim, k])?, randn(&[dim])?);
    let prev = with_prev.then(|| randn(&[batch, dim, k - 1])).transpose()?;
    let what = format!("conv+silu B={batch} L={len} D={dim} K={k} prev={with_prev}");
    let (y, p) = causal_conv1d_silu(&x, &w, &bias, prev.as_ref())?;
    let (y_ref, p_ref) = reference::causal_conv1d(&x.contiguous()?, &w, &bias, prev.as_ref())?;
    assert_close(&format!("{what} y"), &y, &y_ref.silu()?)?;
    assert_close(&format!("{what} next prev"), &p, &p_ref)
}

fn check_scan(batch: usize, len: usize, dim: usize, n: usize, with_h0: bool) -> Result<()> {
    let xz = slices_of_one(batch, len, &[dim, dim])?;
    let (x, z) = (&xz[0], &xz[1]);
    let dbc = slices_of_one(batch, len, &[3, n, n])?;
    let (b, c) = (&dbc[1], &dbc[2]);
    // dt before its bias, around the mixer's range: softplus(dt + bias) from about 0.02 to 1.
    let dt = (randn(&[batch, len, dim])? - 2.0)?;
    let dt_bias = (randn(&[dim])? * 0.5)?;
    let a = ((randn(&[dim, n])? * 0.5)?.exp()? * -1.0)?;
    let d = randn(&[dim])?;
    let h0 = with_h0.then(|| randn(&[batch, dim, n])).transpose()?;
    let what = format!("gated scan B={batch} L={len} D={dim} N={n} h0={with_h0}");
    let args = GatedScanArgs {
        dt: &dt,
        dt_bias: &dt_bias,
        a: &a,
        b,
        c,
        d: &d,
        z,
        h0: h0.as_ref(),
    };
    let (y, h) = gated_scan(x, &args)?;

    let delta = softplus(&dt.broadcast_add(&dt_bias)?)?;
    let x_c = x.contiguous()?;
    let (y_ref, h_ref) = reference::selective_scan(
        &x_c,
        &delta,
        &a,
        &b.contiguous()?,
        &c.contiguous()?,
        h0.as_ref(),
    )?;
    let y_ref = ((y_ref + x_c.broadcast_mul(&d)?)? * z.contiguous()?.silu()?)?;
    assert_close(&format!("{what} y"), &y, &y_ref)?;
    assert_close(&format!("{what} h_last"), &h, &h_ref)
}

#[test]
fn conv_with_silu_matches_the_reference_on_several_shapes() -> Result<()> {
    for (batch, len, dim, k) in CONV_SHAPES {
        check_conv(batch, len, dim, k, false)?;
        check_conv(batch, len, dim, k, true)?;
    }
    Ok(())
}

#[test]
fn gated_scan_matches_the_reference_on_several_shapes() -> Result<()> {
    for (batch, len, dim, n) in SCAN_SHAPES {
        check_scan(batch, len, dim, n, false)?;
        check_scan(batch, len, dim, n, true)?;
    }
    Ok(())
}

#[test]
fn softplus_of_extreme_rates_is_exact_in_both_tails() -> Result<()> {
    // softplus(v) is v for large v and exp(v) for very negative v, where `ln(1 + exp(v))` in
    // f32 would round to 0. One step from a zero state with a = 0 and b = c = 1 gives
    // y = N softplus(dt) x, times silu(50) = 50 with D = 0.
    let (dim, n) = (16, 4);
    let rates = [-60.0f32, -20.0, 0.5, 30.0, 80.0];
    let dt: Vec<f32> = (0..dim).map(|i| rates[i % rates.len()]).collect();
    let x = randn(&[1, 1, dim])?;
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu);
    let ones = |shape: &[usize]| Tensor::ones(shape, DType::F32, &Device::Cpu);
    let args = GatedScanArgs {
        dt: &Tensor::from_vec(dt.clone(), (1, 1, dim), &Device::Cpu)?,
        dt_bias: &zeros(&[dim])?,
        a: &zeros(&[dim, n])?,
        b: &ones(&[1, 1, n])?,
        c: &ones(&[1, 1, n])?,
        d: &zeros(&[dim])?,
        z: &(ones(&[1, 1, dim])? * 50.0)?,
        h0: None,
    };
    let y = gated_scan(&x, &args)?.0.flatten_all()?.to_vec1::<f32>()?;
    let x = x.flatten_all()?.to_vec1::<f32>()?;
    for ((&y, &x), &v) in y.iter().zip(&x).zip(&dt) {
        let v = f64::from(v);
        let softplus = v.max(0.0) + (-v.abs()).exp().ln_1p();
        let want = n as f64 * softplus * f64::from(x) * 50.0;
        let rel = ((f64::from(y) - want) / want).abs();
        assert!(rel < 1e-5, "dt {v}: got {y}, want {want}");
    }
    Ok(())
}

#[test]
fn tracked_or_wrongly_shaped_inputs_are_errors() -> Result<()> {
    let (w, bias) = (randn(&[8, 4])?, randn(&[8])?);
    let var = candle_core::Var::from_tensor(&randn(&[1, 3, 8])?)?;
    assert!(causal_conv1d_silu(var.as_tensor(), &w, &bias, None).is_err());
    assert!(causal_conv1d_silu(&randn(&[1, 3, 8])?, &w, &randn(&[7])?, None).is_err());
    Ok(())
}

/// The attention as candle ops, as the model's differentiable path computes it: weights
/// (R, H, S, V) and read (R, S, n).
fn attention_reference(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    log_scores: &Tensor,
    visible: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor)> {
    let (rows, s, n) = q.dims3()?;
    let v_len = keys.dim(1)?;
    let dh = n / heads;
    let split = |t: &Tensor, len: usize| {
        t.reshape((rows, len, heads, dh))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, k, v) = (
        split(&(q / (dh as f64).sqrt())?, s)?,
        split(keys, v_len)?,
        split(values, v_len)?,
    );
    let bias = ((visible - 1.0)? * 1e9)?
        .broadcast_add(&log_scores.unsqueeze(1)?)?
        .unsqueeze(1)?;
    let logits = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
    let max = logits.max_keepdim(3)?;
    let e = logits.broadcast_sub(&max)?.exp()?;
    let seen = visible.max_keepdim(2)?.unsqueeze(1)?;
    let weights = e.broadcast_div(&e.sum_keepdim(3)?)?.broadcast_mul(&seen)?;
    let read = weights.matmul(&v)?.transpose(1, 2)?.reshape((rows, s, n))?;
    Ok((read, weights))
}

#[test]
fn note_attention_matches_the_unfused_ops_on_several_shapes() -> Result<()> {
    // (rows, S, V, n, heads): one head, V not a multiple of a vector, the model's shapes, heads
    // wider than a vector (32, and 40: a partial block of lanes).
    for &(rows, s, v_len, n, heads) in &[
        (1, 1, 1, 4, 1),
        (3, 5, 7, 8, 2),
        (2, 4, 12, 16, 2),
        (4, 64, 128, 64, 4),
        (2, 16, 40, 64, 4),
        (2, 8, 20, 64, 2),
        (1, 3, 5, 40, 1),
    ] {
        let q = randn(&[rows, s, n])?;
        let (keys, values) = (randn(&[rows, v_len, n])?, randn(&[rows, v_len, n])?);
        let log_scores = (randn(&[rows, v_len])?.abs()? * -1.0)?;
        // About half the notes visible, and the first query of every row sees none.
        let visible = randn(&[rows, s, v_len])?.ge(0.0)?.to_dtype(DType::F32)?;
        let visible = visible.slice_assign(
            &[0..rows, 0..1, 0..v_len],
            &Tensor::zeros((rows, 1, v_len), DType::F32, &Device::Cpu)?,
        )?;
        let what = format!("attention R={rows} S={s} V={v_len} n={n} H={heads}");
        let notes = Tensor::cat(&[&keys, &values, &log_scores.unsqueeze(2)?], 2)?;
        let (read, weights) = note_attention(&q, &notes, &visible, heads, true)?;
        let (read_ref, weights_ref) =
            attention_reference(&q, &keys, &values, &log_scores, &visible, heads)?;
        assert_close(&format!("{what} read"), &read, &read_ref)?;
        assert_close(
            &format!("{what} weights"),
            &weights.expect("weights were asked for"),
            &weights_ref,
        )?;
        let (read_only, none) = note_attention(&q, &notes, &visible, heads, false)?;
        assert!(none.is_none());
        assert_close(&format!("{what} read without weights"), &read_only, &read)?;
    }
    Ok(())
}

/// The gate as the model's unfused candle ops: `acc + g c` with
/// `g = sigmoid(o w_o^T + c w_c^T + bias)`, zeroed below `tau2`, and how many tokens skipped.
fn gate_reference(
    acc: &Tensor,
    o: &Tensor,
    c: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    tau2: Option<f32>,
) -> Result<(Tensor, u64)> {
    let d = o.dim(2)?;
    let half = |x: &Tensor, at: usize| x.broadcast_matmul(&w.narrow(1, at, d)?.t()?);
    let logit = (half(o, 0)? + half(c, d)?)?.broadcast_add(bias)?;
    let g = (logit.neg()?.exp()? + 1.0)?.recip()?;
    let Some(tau2) = tau2 else {
        return Ok(((acc + c.broadcast_mul(&g)?)?, 0));
    };
    let keep = g.ge(f64::from(tau2))?.to_dtype(DType::F32)?;
    let skipped = g.elem_count() as u64 - keep.sum_all()?.to_scalar::<f32>()? as u64;
    Ok(((acc + c.broadcast_mul(&(g * keep)?)?)?, skipped))
}

#[test]
fn gate_add_matches_the_unfused_ops_on_several_shapes() -> Result<()> {
    // (B, S, d): one token, widths that are not a multiple of a vector, more rows than one
    // task takes, the model's width.
    for &(b, s, d) in &[(1, 1, 1), (2, 3, 5), (1, 100, 17), (2, 130, 512)] {
        let [acc, o, c] = [0, 1, 2].map(|_| randn(&[b, s, d]));
        let (acc, o, c) = (acc?, o?, c?);
        // Logits of order 1, so that both sides of the threshold are hit.
        let w = (randn(&[1, 2 * d])? / (d as f64).sqrt())?;
        let bias = randn(&[1])?;
        for tau2 in [None, Some(0.5)] {
            let what = format!("gate B={b} S={s} d={d} tau2={tau2:?}");
            let (sum, skipped) = gate_add(&acc, &o, &c, &w, Some(&bias), tau2)?;
            let (sum_ref, skipped_ref) = gate_reference(&acc, &o, &c, &w, &bias, tau2)?;
            assert_close(&what, &sum, &sum_ref)?;
            let skipped = u64::from(skipped.to_vec1::<u32>()?[0]);
            assert_eq!(skipped, skipped_ref, "{what}: skipped tokens");
        }
    }
    Ok(())
}

#[test]
fn note_log_scores_are_exact_log_sigmoids_on_several_shapes() -> Result<()> {
    // (B, T, q): one token, a width that is not a multiple of a vector, the model's shapes.
    for &(b, t, q) in &[(1, 1, 1), (2, 7, 5), (1, 1024, 128)] {
        let what = format!("log-scores B={b} T={t} q={q}");
        let h = randn(&[b, t, q])?;
        let (b1, b2) = (randn(&[q])?, randn(&[1])?);
        // Logits far into both tails too, where the pool still ranks notes by their log-scores.
        let w2 = (randn(&[1, q])? * 20.0)?;
        let log_scores = note_log_scores(&h, &b1, &w2, &b2)?;
        let logits = h
            .broadcast_add(&b1)?
            .relu()?
            .broadcast_matmul(&w2.t()?)?
            .broadcast_add(&b2)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let got = log_scores.flatten_all()?.to_vec1::<f32>()?;
        for (&x, &y) in logits.iter().zip(&got) {
            let x = f64::from(x);
            let want = x.min(0.0) - (-x.abs()).exp().ln_1p();
            // Relative to the log-score itself (-1e-12 past a logit of 27 is not 0), up to the
            // rounding of a logit of 128 terms summed in another order (FMA or not), which
            // moves ln s by sigmoid(-x) dx.
            let err = (f64::from(y) - want).abs() / want.abs().max(1e-30);
            assert!(
                err < 1e-4 * x.abs().max(1.0),
                "{what}: logit {x}: {y} != {want}"
            );
        }
    }
    Ok(())
}

/// The number of values the storage behind `t` holds (f32 on the CPU).
fn storage_len(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => v.len(),
        _ => panic!("expected an f32 CPU tensor"),
    }
}

#[test]
fn the_states_own_only_their_own_memory() -> Result<()> {
    // A reading state keeps the conv and scan states between reads: views into the ops' packed
    // outputs would keep the whole block's outputs alive with them.
    let (batch, len, dim, n) = (1, 512, 16, 4);
    let xz = slices_of_one(batch, len, &[dim, dim])?;
    let dbc = slices_of_one(batch, len, &[3, n, n])?;
    let (x, prev) = causal_conv1d_silu(&xz[0], &randn(&[dim, 4])?, &randn(&[dim])?, None)?;
    let args = GatedScanArgs {
        dt: &randn(&[batch, len, dim])?,
        dt_bias: &randn(&[dim])?,
        a: &(randn(&[dim, n])?.exp()? * -1.0)?,
        b: &dbc[1],
        c: &dbc[2],
        d: &randn(&[dim])?,
        z: &xz[1],
        h0: None,
    };
    let (_, h) = gated_scan(&x, &args)?;
    let (_, h_op) = memmamba_kernels::selective_scan(
        &x,
        &randn(&[batch, len, dim])?.exp()?,
        args.a,
        &dbc[1].contiguous()?,
        &dbc[2].contiguous()?,
        None,
    )?;
    let (_, prev_op) =
        memmamba_kernels::causal_conv1d(&x, &randn(&[dim, 4])?, &randn(&[dim])?, None)?;
    for (what, state) in [
        ("conv+silu", &prev),
        ("gated scan", &h),
        ("scan op", &h_op),
        ("conv op", &prev_op),
    ] {
        assert_eq!(
            storage_len(state),
            state.elem_count(),
            "{what}: the state's storage"
        );
    }
    Ok(())
}
