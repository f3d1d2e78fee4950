//! Streaming benchmark: tokens/s and peak memory of `MemMamba::read` over 1k to 1M tokens, with
//! notes on and off, each run in a fresh child process so that its peak memory is its own: the
//! peak RSS on the CPU; on a GPU (`--device cuda`, a build with `--features cuda`) also the peak
//! GPU memory in use, polled from nvidia-smi every 50 ms (the GPU must be otherwise idle).
//!
//! ```text
//! cargo run --release -p memmamba --example bench -- [--preset small] [--device cpu|cuda[:N]]
//!     [--batch 1] [--lengths 1000,16000,256000,1000000] [--notes on,off] [--memory-trace]
//! ```
//! Prints the machine's candle f32 matmul GFLOP/s, the FLOP floor per token and a markdown table.
//! With `--memory-trace`, each run also prints (on stderr) the memory in use between reads every
//! [`TRACE_EVERY`] tokens: the GPU's, after a synchronisation, or the resident set on the CPU.
//! The table's peaks include what a block holds while it is read; the trace shows whether what
//! stays between blocks grows with the document.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use memmamba::{Config, MemMamba};

/// Tokens handed to one `read` call (which reads them in blocks of its own).
const FEED: usize = 65536;

/// Tokens between two lines of `--memory-trace`.
const TRACE_EVERY: u64 = 262_144;

struct Args {
    preset: String,
    device: String,
    batch: usize,
    lengths: Vec<u64>,
    notes: Vec<bool>,
    memory_trace: bool,
    child: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        preset: "small".into(),
        device: "cpu".into(),
        batch: 1,
        lengths: vec![1_000, 16_000, 256_000, 1_000_000],
        notes: vec![true, false],
        memory_trace: false,
        child: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--preset" => args.preset = value()?,
            "--lengths" => {
                args.lengths = value()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .context("--lengths: a comma-separated list")
                    })
                    .collect::<Result<_>>()?
            }
            "--notes" => {
                args.notes = value()?
                    .split(',')
                    .map(|s| match s {
                        "on" => Ok(true),
                        "off" => Ok(false),
                        _ => bail!("--notes takes on, off or on,off"),
                    })
                    .collect::<Result<_>>()?
            }
            "--device" => args.device = value()?,
            "--batch" => args.batch = value()?.parse().context("--batch: a number")?,
            "--memory-trace" => args.memory_trace = true,
            "--child" => args.child = true,
            _ => bail!("unknown argument {flag}"),
        }
    }
    Ok(args)
}

/// A memory figure of this process in KiB from /proc/self/status: `VmHWM` (peak resident set)
/// or `VmRSS` (resident set now).
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// GPU memory in use on `device` (an index) in MiB, from nvidia-smi.
fn gpu_used_mib(device: usize) -> Result<u64> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits"])
        .arg(format!("--id={device}"))
        .output()
        .context("nvidia-smi")?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// Polls [`gpu_used_mib`] every 50 ms until dropped; `peak()` is the highest reading.
struct GpuMemoryPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl GpuMemoryPeak {
    fn start(device: usize) -> Self {
        let (peak, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(used) = gpu_used_mib(device) {
                    p.fetch_max(used, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for GpuMemoryPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Best-of-5 f32 matmul throughput of a layer-shaped product (1024 x d) x (d x 4d), in GFLOP/s.
fn matmul_gflops(d: usize, device: &Device) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (1024, d), device)?;
    let b = Tensor::randn(0f32, 1.0, (d, 4 * d), device)?;
    a.matmul(&b)?;
    device.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        a.matmul(&b)?;
        device.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * 1024.0 * d as f64 * 4.0 * d as f64 / best / 1e9)
}

/// The device of a `--device` spec.
fn open_device(spec: &str) -> Result<(Device, Option<usize>)> {
    let choice = memmamba::device::parse_device(spec)?;
    let (device, notice) = memmamba::device::select(choice)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let index = match &device {
        Device::Cuda(_) => Some(spec.split_once(':').map_or(Ok(0), |(_, n)| n.parse())?),
        _ => None,
    };
    Ok((device, index))
}

/// One run (in the child): reads `len` pseudo-random tokens into `batch` rows; prints
/// `tokens_per_s peak_rss_kib peak_gpu_mib` (tokens of all rows; 0 MiB on the CPU), and with
/// `memory_trace` the memory in use every [`TRACE_EVERY`] tokens on stderr.
fn child(cfg: &Config, len: u64, batch: usize, spec: &str, memory_trace: bool) -> Result<()> {
    let (device, gpu) = open_device(spec)?;
    let model = MemMamba::init(cfg, &VarMap::new(), &device, 0)?;
    // Warm-up on a throwaway state. On a GPU the first ops load the kernels and cuBLAS picks
    // its algorithms for each new shape, which in a fresh process otherwise dominates the short
    // runs: warm up with a read of the size timed, as the peers do (bench/peers.py).
    let warm_up = if device.is_cuda() {
        FEED.min(len as usize)
    } else {
        2 * cfg.chunk
    };
    model.read(
        &mut model.new_state(batch)?,
        &Tensor::zeros((batch, warm_up), DType::U32, &device)?,
    )?;
    device.synchronize()?;
    let mut state = model.new_state(batch)?;
    let memory = gpu.map(GpuMemoryPeak::start);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    while state.tokens_read() < len {
        let n = FEED.min((len - state.tokens_read()) as usize);
        let ids: Vec<u32> = (0..batch * n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % cfg.vocab_size as u64) as u32
            })
            .collect();
        model.read(&mut state, &Tensor::from_vec(ids, (batch, n), &device)?)?;
        if memory_trace && state.tokens_read() % TRACE_EVERY == 0 {
            device.synchronize()?;
            let mib = match gpu {
                Some(index) => gpu_used_mib(index)?,
                None => status_kib("VmRSS")? / 1024,
            };
            eprintln!("{} tokens read: {mib} MiB in use", state.tokens_read());
        }
    }
    device.synchronize()?;
    let secs = start.elapsed().as_secs_f64();
    let gpu_mib = memory.as_ref().map_or(0, GpuMemoryPeak::peak);
    println!(
        "{} {} {gpu_mib}",
        (batch as u64 * len) as f64 / secs,
        status_kib("VmHWM")?
    );
    Ok(())
}

fn main() -> Result<()> {
    memmamba::alloc::single_malloc_arena();
    let args = parse_args()?;
    let base = Config::preset(&args.preset)?;
    if args.child {
        let cfg = Config {
            notes: args.notes[0],
            ..base
        };
        return child(
            &cfg,
            args.lengths[0],
            args.batch,
            &args.device,
            args.memory_trace,
        );
    }
    let gflops = matmul_gflops(base.d_model, &open_device(&args.device)?.0)?;
    println!("candle f32 matmul on {}: {gflops:.1} GFLOP/s", args.device);
    let exe = std::env::current_exe()?;
    println!(
        "| preset | notes | batch | tokens | tokens/s | floor tokens/s | peak RSS (MiB) | peak GPU memory (MiB) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for &notes in &args.notes {
        let cfg = Config {
            notes,
            ..base.clone()
        };
        // Reading costs about 2 FLOPs per weight that touches a token; the embedding is a
        // lookup and the LM head runs once per read, so they are left out.
        let flops = 2.0 * (cfg.parameter_count() - cfg.vocab_size * cfg.d_model) as f64;
        let floor = gflops * 1e9 / flops;
        for &len in &args.lengths {
            let out = Command::new(&exe)
                .args([
                    "--child",
                    "--preset",
                    &args.preset,
                    "--device",
                    &args.device,
                ])
                .args(["--batch", &args.batch.to_string()])
                .args(["--lengths", &len.to_string()])
                .args(["--notes", if notes { "on" } else { "off" }])
                .args(args.memory_trace.then_some("--memory-trace"))
                .output()?;
            if !out.status.success() {
                bail!("child run failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            if args.memory_trace {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8(out.stdout)?;
            let mut fields = text.split_whitespace();
            let tps: f64 = fields.next().context("no tokens/s")?.parse()?;
            let kib: f64 = fields.next().context("no peak RSS")?.parse()?;
            let gpu_mib: u64 = fields.next().context("no peak GPU memory")?.parse()?;
            println!(
                "| {} | {} | {} | {len} | {tps:.0} | {floor:.0} | {:.1} | {} |",
                args.preset,
                if notes { "on" } else { "off" },
                args.batch,
                kib / 1024.0,
                if gpu_mib > 0 {
                    gpu_mib.to_string()
                } else {
                    "-".into()
                }
            );
        }
    }
    Ok(())
}
