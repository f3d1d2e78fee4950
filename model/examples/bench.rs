//! CPU streaming benchmark: tokens/s and peak RSS of `MemMamba::read` over 1k to 1M tokens,
//! with notes on and off, each run in a fresh child process so that its peak RSS is its own.
//!
//! ```text
//! cargo run --release -p memmamba --example bench -- [--preset small]
//!     [--lengths 1000,16000,256000,1000000] [--notes on,off]
//! ```
//! Prints the machine's candle f32 matmul GFLOP/s, the FLOP floor per token and a markdown table.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use memmamba::{Config, MemMamba};

/// Tokens handed to one `read` call.
const FEED: usize = 4096;

struct Args {
    preset: String,
    lengths: Vec<u64>,
    notes: Vec<bool>,
    child: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        preset: "small".into(),
        lengths: vec![1_000, 16_000, 256_000, 1_000_000],
        notes: vec![true, false],
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
            "--child" => args.child = true,
            _ => bail!("unknown argument {flag}"),
        }
    }
    Ok(args)
}

/// Peak resident set size of this process in KiB (VmHWM).
fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

/// Best-of-5 f32 matmul throughput of a layer-shaped product (1024 x d) x (d x 4d), in GFLOP/s.
fn matmul_gflops(d: usize) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (1024, d), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (d, 4 * d), &Device::Cpu)?;
    a.matmul(&b)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        a.matmul(&b)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * 1024.0 * d as f64 * 4.0 * d as f64 / best / 1e9)
}

/// One run (in the child): reads `len` pseudo-random tokens; prints `tokens_per_s peak_kib`.
fn child(cfg: &Config, len: u64) -> Result<()> {
    let model = MemMamba::init(cfg, &VarMap::new(), &Device::Cpu)?;
    let mut state = model.new_state(1)?;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    while state.tokens_read() < len {
        let n = FEED.min((len - state.tokens_read()) as usize);
        let ids: Vec<u32> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % cfg.vocab_size as u64) as u32
            })
            .collect();
        model.read(&mut state, &Tensor::from_vec(ids, (1, n), &Device::Cpu)?)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} {}", len as f64 / secs, peak_rss_kib()?);
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let base = Config::preset(&args.preset)?;
    if args.child {
        let cfg = Config {
            notes: args.notes[0],
            ..base
        };
        return child(&cfg, args.lengths[0]);
    }
    let gflops = matmul_gflops(base.d_model)?;
    println!("candle f32 matmul: {gflops:.1} GFLOP/s");
    let exe = std::env::current_exe()?;
    println!("| preset | notes | tokens | tokens/s | floor tokens/s | peak RSS (MiB) |");
    println!("|---|---|---:|---:|---:|---:|");
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
                .args(["--child", "--preset", &args.preset])
                .args(["--lengths", &len.to_string()])
                .args(["--notes", if notes { "on" } else { "off" }])
                .output()?;
            if !out.status.success() {
                bail!("child run failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8(out.stdout)?;
            let mut fields = text.split_whitespace();
            let tps: f64 = fields.next().context("no tokens/s")?.parse()?;
            let kib: f64 = fields.next().context("no peak RSS")?.parse()?;
            println!(
                "| {} | {} | {len} | {tps:.0} | {floor:.0} | {:.1} |",
                args.preset,
                if notes { "on" } else { "off" },
                kib / 1024.0
            );
        }
    }
    Ok(())
}
