//! GPU against CPU: every fused op on a CUDA device agrees with the same op on the CPU (itself
//! tested against the unfused reference), forward outputs and gradients, on fresh random inputs
//! at several shapes: L not a multiple of the kernels' time chunks, B > 1, D not a multiple of
//! their channel blocks, d_state below, at and above 16, in f32 and in bf16/f16 (against the CPU
//! run on the same rounded inputs).
//!
//! Built without the `cuda` feature, or run without a GPU, each test prints
//! "skipped: no CUDA device" on stderr (visible through the harness's capture) and passes.

use std::io::Write;

use candle_core::{DType, Device, Result, Tensor, Var};
use memmamba_kernels::{causal_conv1d, gather_rows, selective_scan};

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

fn randn(shape: &[usize]) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, shape, &Device::Cpu)
}

fn max_abs(t: &Tensor) -> Result<f32> {
    if t.elem_count() == 0 {
        return Ok(0.0);
    }
    t.to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()
}

/// Asserts max |gpu - cpu| < tol * max(1, max |cpu|) and returns that relative error.
fn assert_close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f32) -> Result<f32> {
    assert_eq!(gpu.dims(), cpu.dims(), "{what}: shapes");
    let gpu = gpu.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let cpu = cpu.to_dtype(DType::F32)?;
    let diff = max_abs(&(&gpu - &cpu)?)?;
    let scale = max_abs(&cpu)?.max(1.0);
    let rel = diff / scale;
    assert!(
        rel < tol,
        "{what}: max abs diff {diff} >= {tol} * scale {scale}"
    );
    Ok(rel)
}

/// Rounds a CPU f32 tensor through `dtype` (so that CPU and GPU see the same values).
fn rounded(t: &Tensor, dtype: DType) -> Result<Tensor> {
    t.to_dtype(dtype)?.to_dtype(DType::F32)
}

/// Random scan inputs x, dt > 0, a < 0, b, c, h0 and loss weights r, s, on the CPU.
fn scan_inputs(batch: usize, len: usize, dim: usize, n: usize) -> Result<Vec<Tensor>> {
    Ok(vec![
        randn(&[batch, len, dim])?,
        ((randn(&[batch, len, dim])? * 0.5)? - 2.0)?.exp()?,
        ((randn(&[dim, n])? * 0.5)?.exp()? * -1.0)?,
        randn(&[batch, len, n])?,
        randn(&[batch, len, n])?,
        randn(&[batch, dim, n])?,
        randn(&[batch, len, dim])?,
        randn(&[batch, dim, n])?,
    ])
}

/// Runs the scan on `dev` (x, dt in `dtype`) and returns y, h_last and the gradients of
/// `sum(y * r) + sum(h_last * s)` w.r.t. x, dt, a, b, c, h0.
fn scan_run(inputs: &[Tensor], dev: &Device, dtype: DType) -> Result<Vec<Tensor>> {
    let vars = inputs[..6]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.to_device(dev)?;
            Var::from_tensor(&if i < 2 { t.to_dtype(dtype)? } else { t })
        })
        .collect::<Result<Vec<_>>>()?;
    let [x, dt, a, b, c, h0] = [0, 1, 2, 3, 4, 5].map(|i| vars[i].as_tensor());
    let (y, h) = selective_scan(x, dt, a, b, c, Some(h0))?;
    let r = inputs[6].to_device(dev)?.to_dtype(dtype)?;
    let s = inputs[7].to_device(dev)?.to_dtype(dtype)?;
    let loss = ((&y * &r)?.to_dtype(DType::F32)?.sum_all()?
        + (&h * &s)?.to_dtype(DType::F32)?.sum_all()?)?;
    let grads = loss.backward()?;
    let mut out = vec![y, h];
    for v in &vars {
        out.push(grads.get(v.as_tensor()).expect("a gradient").clone());
    }
    Ok(out)
}

const SCAN_NAMES: [&str; 8] = ["y", "h_last", "gx", "gdt", "ga", "gb", "gc", "gh0"];

/// Compares the GPU scan in `dtype` with the CPU scan on the same (rounded) inputs.
fn check_scan(
    dev: &Device,
    (batch, len, dim, n): (usize, usize, usize, usize),
    dtype: DType,
    tol: f32,
) -> Result<()> {
    let mut inputs = scan_inputs(batch, len, dim, n)?;
    for i in [0, 1, 6, 7] {
        inputs[i] = rounded(&inputs[i], dtype)?;
    }
    let cpu = scan_run(&inputs, &Device::Cpu, DType::F32)?;
    let gpu = scan_run(&inputs, dev, dtype)?;
    let mut worst = 0f32;
    for ((name, g), c) in SCAN_NAMES.iter().zip(&gpu).zip(&cpu) {
        let what = format!("scan {dtype:?} B{batch} L{len} D{dim} N{n} {name}");
        worst = worst.max(assert_close(&what, g, c, tol)?);
    }
    eprintln!("scan {dtype:?} B{batch} L{len} D{dim} N{n}: max rel err {worst:.2e}");
    Ok(())
}

#[test]
fn scan_f32_forward_and_gradients_match_cpu() -> Result<()> {
    let Some(dev) = gpu() else { return Ok(()) };
    for shape in [
        (1, 1, 8, 16),      // one step, one chunk
        (2, 37, 40, 16),    // one forward chunk, partial backward sub-chunk
        (3, 300, 130, 16),  // several chunks, D beyond one block
        (2, 1000, 40, 5),   // N < 16: idle lanes in the backward
        (1, 5000, 24, 16),  // many forward chunks
        (2, 600, 1100, 16), // wide, several backward chunks
        (2, 200, 33, 40),   // N > 16: forward on the GPU, backward on the host
    ] {
        check_scan(&dev, shape, DType::F32, 1e-3)?;
    }
    Ok(())
}

#[test]
fn scan_half_forward_and_gradients_match_cpu() -> Result<()> {
    let Some(dev) = gpu() else { return Ok(()) };
    for dtype in [DType::BF16, DType::F16] {
        for shape in [(2, 300, 130, 16), (1, 700, 40, 8)] {
            check_scan(&dev, shape, dtype, 3e-2)?;
        }
    }
    Ok(())
}

/// Runs the conv on `dev` (x in `dtype`) and returns y, next prev and the gradients of
/// `sum(y * r) + sum(next * s)` w.r.t. x, w, bias, prev.
fn conv_run(inputs: &[Tensor], dev: &Device, dtype: DType) -> Result<Vec<Tensor>> {
    let vars = inputs[..4]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.to_device(dev)?;
            Var::from_tensor(&if i == 0 { t.to_dtype(dtype)? } else { t })
        })
        .collect::<Result<Vec<_>>>()?;
    let [x, w, bias, prev] = [0, 1, 2, 3].map(|i| vars[i].as_tensor());
    let (y, next) = causal_conv1d(x, w, bias, Some(prev))?;
    let r = inputs[4].to_device(dev)?.to_dtype(dtype)?;
    let s = inputs[5].to_device(dev)?.to_dtype(dtype)?;
    let loss = ((&y * &r)?.to_dtype(DType::F32)?.sum_all()?
        + (&next * &s)?.to_dtype(DType::F32)?.sum_all()?)?;
    let grads = loss.backward()?;
    let mut out = vec![y, next];
    for v in &vars {
        out.push(grads.get(v.as_tensor()).expect("a gradient").clone());
    }
    Ok(out)
}

fn check_conv(
    dev: &Device,
    (batch, len, dim, k): (usize, usize, usize, usize),
    dtype: DType,
    tol: f32,
) -> Result<()> {
    let mut inputs = vec![
        randn(&[batch, len, dim])?,
        randn(&[dim, k])?,
        randn(&[dim])?,
        randn(&[batch, dim, k - 1])?,
        randn(&[batch, len, dim])?,
        randn(&[batch, dim, k - 1])?,
    ];
    for i in [0, 3, 4, 5] {
        inputs[i] = rounded(&inputs[i], dtype)?;
    }
    let cpu = conv_run(&inputs, &Device::Cpu, DType::F32)?;
    let gpu = conv_run(&inputs, dev, dtype)?;
    let mut worst = 0f32;
    for ((name, g), c) in ["y", "next_prev", "gx", "gw", "gbias", "gprev"]
        .iter()
        .zip(&gpu)
        .zip(&cpu)
    {
        let what = format!("conv {dtype:?} B{batch} L{len} D{dim} K{k} {name}");
        worst = worst.max(assert_close(&what, g, c, tol)?);
    }
    eprintln!("conv {dtype:?} B{batch} L{len} D{dim} K{k}: max rel err {worst:.2e}");
    Ok(())
}

#[test]
fn conv_forward_and_gradients_match_cpu() -> Result<()> {
    let Some(dev) = gpu() else { return Ok(()) };
    for shape in [
        (1, 1, 8, 4),      // one step
        (2, 2, 40, 4),     // L < K - 1: the next prev reaches into prev
        (2, 37, 200, 4),   // D beyond one block
        (3, 1000, 130, 4), // several time chunks
        (2, 100, 40, 1),   // K = 1: no state
        (1, 300, 24, 7),
    ] {
        check_conv(&dev, shape, DType::F32, 1e-4)?;
    }
    for dtype in [DType::BF16, DType::F16] {
        check_conv(&dev, (2, 300, 130, 4), dtype, 2e-2)?;
    }
    Ok(())
}

/// The inference paths (`infer`) on the GPU against the same functions on the CPU, with their
/// slice arguments cut from wider tensors as in the mixer (x, z of in_proj; dt, b, c of x_proj).
#[test]
fn inference_conv_and_gated_scan_match_cpu() -> Result<()> {
    use memmamba_kernels::infer::{causal_conv1d_silu, gated_scan, GatedScanArgs};
    let Some(dev) = gpu() else { return Ok(()) };
    for (batch, len, dim, n) in [
        (1, 1, 8, 16),
        (2, 37, 200, 16),
        (3, 1000, 130, 4),
        (1, 700, 64, 20),
    ] {
        let xz = randn(&[batch, len, 2 * dim])?;
        let dbc = randn(&[batch, len, 3 + 2 * n])?;
        let small = [
            randn(&[dim, 4])?,                           // conv taps
            randn(&[dim])?,                              // conv bias
            randn(&[batch, dim, 3])?,                    // conv prev
            (randn(&[batch, len, dim])? - 2.0)?,         // dt before its bias
            (randn(&[dim])? * 0.5)?,                     // dt bias
            ((randn(&[dim, n])? * 0.5)?.exp()? * -1.0)?, // a
            randn(&[dim])?,                              // D
            randn(&[batch, dim, n])?,                    // h0
        ];
        let run = |dev: &Device| -> Result<Vec<Tensor>> {
            let (xz, dbc) = (xz.to_device(dev)?, dbc.to_device(dev)?);
            let s: Vec<Tensor> = small
                .iter()
                .map(|t| t.to_device(dev))
                .collect::<Result<_>>()?;
            let (x, prev) = causal_conv1d_silu(&xz.narrow(2, 0, dim)?, &s[0], &s[1], Some(&s[2]))?;
            let args = GatedScanArgs {
                dt: &s[3],
                dt_bias: &s[4],
                a: &s[5],
                b: &dbc.narrow(2, 3, n)?,
                c: &dbc.narrow(2, 3 + n, n)?,
                d: &s[6],
                z: &xz.narrow(2, dim, dim)?,
                h0: Some(&s[7]),
            };
            let (y, h) = gated_scan(&x, &args)?;
            Ok(vec![x, prev, y, h])
        };
        let (on_gpu, on_cpu) = (run(&dev)?, run(&Device::Cpu)?);
        for (name, (g, c)) in ["silu(conv)", "conv prev", "gated y", "h_last"]
            .iter()
            .zip(on_gpu.iter().zip(&on_cpu))
        {
            let what = format!("inference {name} B{batch} L{len} D{dim} N{n}");
            let rel = assert_close(&what, g, c, 1e-4)?;
            eprintln!("{what}: max rel err {rel:.2e}");
        }
    }
    Ok(())
}

/// The note path's kernels on the GPU against the CPU loops: the importance log-scores; the note
/// attention of queries of chunks over their visible notes (some queries seeing none, more
/// queries than a block's threads, notes over several tiles), with the weights; the gate with
/// sparse gating (some rows skipping their read) and without.
#[test]
fn inference_note_log_scores_attention_and_gate_match_cpu() -> Result<()> {
    use memmamba_kernels::infer::{gate_add, note_attention, note_log_scores};
    let Some(dev) = gpu() else { return Ok(()) };
    for (b, t, q) in [(1, 1, 1), (2, 7, 5), (1, 8192, 128)] {
        // Logits of order 10, far into both tails of the sigmoid.
        let args = [randn(&[b, t, q]), randn(&[q]), randn(&[1, q]), randn(&[1])];
        let [h, b1, w2, b2] = args.map(|t| t.and_then(|t| t * 3.0));
        let (h, b1, w2, b2) = (h?, b1?, w2?, b2?);
        let run = |dev: &Device| -> Result<Tensor> {
            let [h, b1, w2, b2] = [&h, &b1, &w2, &b2].map(|t| t.to_device(dev));
            note_log_scores(&h?, &b1?, &w2?, &b2?)
        };
        let what = format!("note log-scores B{b} T{t} q{q}");
        let rel = assert_close(&what, &run(&dev)?, &run(&Device::Cpu)?, 1e-5)?;
        eprintln!("{what}: max rel err {rel:.2e}");
    }
    for (rows, s_len, v_len, n, heads) in [
        (1, 1, 1, 8, 1),
        (16, 64, 128, 64, 4),
        (5, 33, 384, 64, 2),
        (3, 200, 100, 32, 2),
        (2, 64, 70, 64, 1),
    ] {
        let q = randn(&[rows, s_len, n])?;
        let notes = randn(&[rows, v_len, 2 * n + 1])?;
        // About a third of the notes visible; every row's first query sees none.
        let visible = randn(&[rows, s_len, v_len])?
            .ge(0.45)?
            .to_dtype(DType::F32)?;
        let first = Tensor::zeros((rows, 1, v_len), DType::F32, &Device::Cpu)?;
        let visible = Tensor::cat(&[&first, &visible.narrow(1, 1, s_len - 1)?], 1)?;
        let run = |dev: &Device| -> Result<(Tensor, Tensor)> {
            let [q, notes, visible] = [&q, &notes, &visible].map(|t| t.to_device(dev));
            let (read, weights) = note_attention(&q?, &notes?, &visible?, heads, true)?;
            Ok((read, weights.expect("weights were asked for")))
        };
        let ((read_g, w_g), (read_c, w_c)) = (run(&dev)?, run(&Device::Cpu)?);
        let what = format!("note attention R{rows} S{s_len} V{v_len} n{n} H{heads}");
        let rel = assert_close(&format!("{what} read"), &read_g, &read_c, 1e-5)?;
        assert_close(&format!("{what} weights"), &w_g, &w_c, 1e-5)?;
        eprintln!("{what}: max rel err {rel:.2e}");
    }
    for (batch, len, d) in [(1, 1, 8), (2, 300, 512), (1, 77, 100)] {
        let [acc, o, c] = [0; 3].map(|_| randn(&[batch, len, d]));
        let (acc, o, c) = (acc?, o?, c?);
        let (w, bias) = ((randn(&[1, 2 * d])? * 0.1)?, randn(&[1])?);
        for tau2 in [None, Some(0.5f32)] {
            let run = |dev: &Device| -> Result<(Tensor, u64)> {
                let [acc, o, c, w, bias] = [&acc, &o, &c, &w, &bias].map(|t| t.to_device(dev));
                let (out, skipped) = gate_add(&acc?, &o?, &c?, &w?, Some(&bias?), tau2)?;
                Ok((out, u64::from(skipped.to_vec1::<u32>()?[0])))
            };
            let ((out_g, skipped_g), (out_c, skipped_c)) = (run(&dev)?, run(&Device::Cpu)?);
            let what = format!("gate B{batch} L{len} d{d} tau2 {tau2:?}");
            assert_close(&what, &out_g, &out_c, 1e-5)?;
            assert_eq!(skipped_g, skipped_c, "{what}: rows that skipped their read");
            if tau2.is_some() && len > 1 {
                assert!(
                    skipped_c > 0 && skipped_c < (batch * len) as u64,
                    "{what}: {skipped_c} skipped"
                );
            }
        }
    }
    Ok(())
}

/// Gathers rows `index` of `table` on `dev` and returns the rows and the gradient of
/// `sum(rows * r)` w.r.t. the table.
fn gather_run(table: &Tensor, index: &[u32], r: &Tensor, dev: &Device) -> Result<[Tensor; 2]> {
    let table = Var::from_tensor(&table.to_device(dev)?)?;
    let index = Tensor::new(index, dev)?;
    let rows = gather_rows(&table, &index)?;
    let grads = (&rows * r.to_device(dev)?)?.sum_all()?.backward()?;
    let grad = grads.get(table.as_tensor()).expect("a gradient").clone();
    Ok([rows, grad])
}

#[test]
fn gathered_rows_and_their_gradients_match_cpu() -> Result<()> {
    let Some(dev) = gpu() else { return Ok(()) };
    // (R, W, M) as the note pool's gathers in training: a table of K + padded rows, nc * K
    // slots gathered, a note read by up to every chunk; and a small odd shape.
    for &(rows, width, count) in &[
        (7, 3, 50),
        (64 + 4096, 129, 64 * 64),
        (64 + 16384, 129, 256 * 64),
    ] {
        let table = randn(&[rows, width])?;
        // slot j of chunk i holds row (i + j) % rows: rows shared by many chunks, as pool slots
        let index: Vec<u32> = (0..count)
            .map(|m| ((m / 64 + m % 64) % rows) as u32)
            .collect();
        let r = randn(&[count, width])?;
        let cpu = gather_run(&table, &index, &r, &Device::Cpu)?;
        let gpu = gather_run(&table, &index, &r, &dev)?;
        let what = format!("gather R{rows} W{width} M{count}");
        assert_close(&format!("{what} rows"), &gpu[0], &cpu[0], 1e-7)?;
        let err = assert_close(&format!("{what} gradient"), &gpu[1], &cpu[1], 1e-5)?;
        eprintln!("{what}: gradient max rel err {err:.2e}");
    }
    Ok(())
}

/// Copies through the pinned buffers of `transfer`, interleaved with queued GPU work as in a
/// read: every upload arrives whole and every download returns the data of its own tensor,
/// over many sizes (small ones sharing a buffer size, large ones growing it) and more copies in
/// flight than the buffers kept.
#[test]
fn transfers_between_host_and_gpu_keep_their_data() -> Result<()> {
    use memmamba_kernels::transfer::{to_device, HostCopy};
    let Some(dev) = gpu() else { return Ok(()) };
    let empty = to_device(Vec::<u32>::new(), &[0], &dev)?;
    assert_eq!(empty.dims(), [0]);
    let mut downloads = Vec::new();
    for i in 0..200usize {
        let len = [1, 1000, 16_384, 300_000][i % 4] + i;
        let ids: Vec<u32> = (0..len).map(|j| (i * 7919 + j) as u32 % 65_521).collect();
        let up = to_device(ids.clone(), &[len], &dev)?;
        // Queued work after the upload, so that copies are still in flight when the next
        // buffers are taken.
        let doubled = (up.to_dtype(DType::F32)? * 2.0)?;
        downloads.push((HostCopy::start(&doubled)?, ids));
        if downloads.len() == 40 {
            for (copy, ids) in downloads.drain(..) {
                let want: Vec<f32> = ids.iter().map(|&x| 2.0 * x as f32).collect();
                assert_eq!(
                    copy.wait()?,
                    want,
                    "copy {i}: data of another tensor or torn"
                );
            }
        }
    }
    Ok(())
}
