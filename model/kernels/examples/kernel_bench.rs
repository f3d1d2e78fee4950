//! Times the fused ops (selective scan and causal conv1d, forward and backward) and prints
//! markdown tables: on the GPU at B in {1, 8}, L in {8k, 32k, 128k}, D 1024, N 16, K 4, in f32
//! and bf16, with the achieved bandwidth against the memory-traffic floor; on the CPU (f32) at a
//! smaller size.
//!
//!     cargo run --release --features cuda -p memmamba-kernels --example kernel_bench -- [--cpu-only] [--quick] [--peak-gbs 3350]
//!
//! Bytes moved (the floor): scan fwd reads x, dt (dtype) and b, c (f32) and writes y; scan bwd
//! reads x, dt, gy and b, c and writes gx, gdt and gb, gc; conv fwd reads x and writes y; conv bwd
//! reads x, gy and writes gx. Times are of the op alone on packed arguments (the public functions
//! add the packing of the small arguments), averaged over a few runs after a warm-up.

use std::time::Instant;

use candle_core::{CustomOp3, DType, Device, Result, Tensor};
use memmamba_kernels::ops::{conv_args, scan_args, CausalConv1dOp, SelectiveScanOp};

const D: usize = 1024;
const N: usize = 16;
const K: usize = 4;

struct Args {
    cpu_only: bool,
    quick: bool,
    peak_gbs: f64,
}

fn parse_args() -> Args {
    let mut args = Args {
        cpu_only: false,
        quick: false,
        peak_gbs: 3350.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cpu-only" => args.cpu_only = true,
            "--quick" => args.quick = true,
            "--peak-gbs" => {
                args.peak_gbs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--peak-gbs takes a number (GB/s)")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Mean seconds per call of `f` over `iters` calls after one warm-up call.
fn time(dev: &Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    dev.synchronize()?;
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

/// One timed row: op name, shape, seconds, bytes of the floor.
struct Row {
    op: &'static str,
    batch: usize,
    len: usize,
    secs: f64,
    bytes: f64,
}

fn bench_shape(
    dev: &Device,
    dtype: DType,
    batch: usize,
    len: usize,
    iters: usize,
) -> Result<Vec<Row>> {
    let s = dtype.size_in_bytes() as f64;
    let (bld, bln) = ((batch * len * D) as f64, (batch * len * N) as f64);
    let big = |scale: f64, shift: f64| -> Result<Tensor> {
        ((Tensor::randn(0f32, 1f32, (batch, len, D), dev)? * scale)? + shift)?.to_dtype(dtype)
    };
    let x = big(1.0, 0.0)?;
    let dt = ((big(0.5, -2.0)?.to_dtype(DType::F32)?).exp()?).to_dtype(dtype)?;
    let a = (Tensor::randn(0f32, 0.5, (D, N), dev)?.exp()? * -1.0)?;
    let b = Tensor::randn(0f32, 1f32, (batch, len, N), dev)?;
    let c = Tensor::randn(0f32, 1f32, (batch, len, N), dev)?;
    let mut rows = Vec::new();

    let scan = SelectiveScanOp { n: N };
    let (xs, dts, rest) = scan_args(&x, &dt, &a, &b, &c, None)?;
    let out = xs.apply_op3_no_bwd(&dts, &rest, &scan)?;
    let secs = time(dev, iters, || {
        xs.apply_op3_no_bwd(&dts, &rest, &scan).map(drop)
    })?;
    rows.push(Row {
        op: "scan fwd",
        batch,
        len,
        secs,
        bytes: 3.0 * bld * s + 2.0 * bln * 4.0,
    });
    let grad = out.randn_like(0.0, 1.0)?;
    let secs = time(dev, iters, || {
        scan.bwd(&xs, &dts, &rest, &out, &grad).map(drop)
    })?;
    rows.push(Row {
        op: "scan bwd",
        batch,
        len,
        secs,
        bytes: 5.0 * bld * s + 4.0 * bln * 4.0,
    });
    drop((out, grad, rest));

    let conv = CausalConv1dOp { k: K };
    let w = Tensor::randn(0f32, 0.5, (D, K), dev)?;
    let bias = Tensor::randn(0f32, 0.5, D, dev)?;
    let (xc, wb, prev) = conv_args(&x, &w, &bias, None)?;
    let out = xc.apply_op3_no_bwd(&wb, &prev, &conv)?;
    let secs = time(dev, iters, || {
        xc.apply_op3_no_bwd(&wb, &prev, &conv).map(drop)
    })?;
    rows.push(Row {
        op: "conv fwd",
        batch,
        len,
        secs,
        bytes: 2.0 * bld * s,
    });
    let grad = out.randn_like(0.0, 1.0)?;
    let secs = time(dev, iters, || {
        conv.bwd(&xc, &wb, &prev, &out, &grad).map(drop)
    })?;
    rows.push(Row {
        op: "conv bwd",
        batch,
        len,
        secs,
        bytes: 3.0 * bld * s,
    });
    Ok(rows)
}

fn print_table(title: &str, dtype: DType, rows: &[Row], peak_gbs: Option<f64>) {
    println!("\n{title}, {dtype:?}, D {D}, N {N}, K {K}\n");
    match peak_gbs {
        Some(_) => {
            println!("| op | B | L | ms | GB/s | floor ms | x floor |");
            println!("|---|---:|---:|---:|---:|---:|---:|");
        }
        None => {
            println!("| op | B | L | ms | GB/s |");
            println!("|---|---:|---:|---:|---:|");
        }
    }
    for r in rows {
        let gbs = r.bytes / r.secs / 1e9;
        let common = format!(
            "| {} | {} | {} | {:.3} | {:.0} |",
            r.op,
            r.batch,
            r.len,
            r.secs * 1e3,
            gbs
        );
        match peak_gbs {
            Some(peak) => {
                let floor = r.bytes / (peak * 1e9);
                println!("{common} {:.3} | {:.2} |", floor * 1e3, r.secs / floor);
            }
            None => println!("{common}"),
        }
    }
}

fn main() -> Result<()> {
    let args = parse_args();
    if !args.cpu_only {
        let dev = Device::new_cuda(0)?;
        let lens: &[usize] = if args.quick {
            &[8192]
        } else {
            &[8192, 32768, 131072]
        };
        for dtype in [DType::F32, DType::BF16] {
            let mut rows = Vec::new();
            for batch in [1, 8] {
                for &len in lens {
                    rows.extend(bench_shape(&dev, dtype, batch, len, 5)?);
                }
            }
            print_table(
                &format!("GPU (floor at {:.0} GB/s)", args.peak_gbs),
                dtype,
                &rows,
                Some(args.peak_gbs),
            );
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for len in [2048, 8192] {
        rows.extend(bench_shape(&Device::Cpu, DType::F32, 1, len, 2)?);
    }
    print_table(&format!("CPU ({threads} threads)"), DType::F32, &rows, None);
    Ok(())
}
