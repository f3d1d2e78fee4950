//! `memmamba-train`: reproduces the shipped tokenizer and model.
//!
//! ```text
//! memmamba-train tokenizer --corpus ../shared/corpus -o assets/tokenizer.json
//! memmamba-train encode --corpus ../shared/corpus --split train -o data/train.tokens
//! memmamba-train train --tokens data/train.tokens --eval data/dev.tokens --out runs/small
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Parser, Subcommand, ValueEnum};
use memmamba::{Config, MemMamba};
use memmamba_train::corpus::{read_manifest, Split};
use memmamba_train::eval::{passkey_grid, perplexity_vs_context};
use memmamba_train::optim::AdamWConfig;
use memmamba_train::tasks::TaskMix;
use memmamba_train::tokenizer::BookTokenizer;
use memmamba_train::tokens::TokenStore;
use memmamba_train::trainer::{TrainConfig, Trainer};

#[derive(Parser)]
#[command(
    name = "memmamba-train",
    version,
    about = "Train MemMamba's tokenizer and model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Dev,
}

#[derive(Subcommand)]
enum Command {
    /// Trains the byte-level BPE tokenizer on the corpus's train split.
    Tokenizer {
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
        #[arg(long, default_value_t = 16384)]
        vocab: usize,
        #[arg(short, long, default_value = "assets/tokenizer.json")]
        output: PathBuf,
    },
    /// Tokenizes one split of the corpus into a token stream.
    Encode {
        #[arg(long, default_value = "../shared/corpus")]
        corpus: PathBuf,
        #[arg(long, default_value = "assets/tokenizer.json")]
        tokenizer: PathBuf,
        #[arg(long, value_enum)]
        split: SplitArg,
        /// Keep only the first N books of the split (0: all).
        #[arg(long, default_value_t = 0)]
        max_books: usize,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Trains a model, or resumes the run in --out.
    Train {
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long)]
        eval: Option<PathBuf>,
        #[arg(long, default_value = "assets/tokenizer.json")]
        tokenizer: PathBuf,
        /// Model size: tiny, small or base.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Train the notes-off baseline (plain Mamba-1) instead.
        #[arg(long)]
        notes_off: bool,
        #[arg(long, default_value_t = 2048)]
        seq_len: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 2000)]
        steps: u64,
        #[arg(long, default_value_t = 100)]
        warmup: u64,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        #[arg(long, default_value_t = 1e-4)]
        min_lr: f64,
        #[arg(long, default_value_t = 1.0)]
        clip: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        eval_every: u64,
        #[arg(long, default_value_t = 4)]
        eval_batches: usize,
        #[arg(long, default_value_t = 100)]
        checkpoint_every: u64,
        /// Share of pass-key samples in the mixture (the rest of the shares: plain text).
        #[arg(long, default_value_t = TaskMix::default().passkey)]
        passkey_share: f64,
        /// Share of multi-key samples.
        #[arg(long, default_value_t = TaskMix::default().multikey)]
        multikey_share: f64,
        /// Share of quote-recall samples.
        #[arg(long, default_value_t = TaskMix::default().recall)]
        recall_share: f64,
        /// Start from these trained weights (e.g. assets/model/model.safetensors) with a fresh
        /// optimizer, instead of the initialisation; ignored when --out holds a checkpoint.
        #[arg(long)]
        init: Option<PathBuf>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a trained run's weights 8-bit quantised per matrix row (the shipped form:
    /// assets/model/) with its config.json.
    Quantize {
        /// A run directory written by `train` (config.json + model.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// The folder to write config.json and model.safetensors into.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Measures a trained model on held-out books: perplexity vs context length and the
    /// pass-key grid, printed as markdown tables.
    Eval {
        /// A run directory written by `train` (config.json + model.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// Token stream of held-out books (see `encode`).
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value = "assets/tokenizer.json")]
        tokenizer: PathBuf,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1024,2048,4096,8192,16384,32768,65536"
        )]
        contexts: Vec<usize>,
        #[arg(long, default_value_t = 8)]
        windows: usize,
        #[arg(long, value_delimiter = ',', default_value = "1024,4096,16384,65536")]
        passkey_lengths: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
        depths: Vec<f64>,
        #[arg(long, default_value_t = 20)]
        trials: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

/// The device of a `--device` spec, saying so when `auto` falls back to the CPU.
fn open_device(spec: &str) -> Result<Device> {
    let (device, notice) = memmamba::device::select(memmamba::device::parse_device(spec)?)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    Ok(device)
}

/// The model of a run directory (config.json + model.safetensors) on `device`.
fn load_run(run: &Path, device: &Device) -> Result<(Config, MemMamba)> {
    let config_path = run.join("config.json");
    let config = Config::from_json_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("{}", config_path.display()))?,
    )?;
    let model = MemMamba::load(&config, run.join("model.safetensors"), device)?;
    Ok((config, model))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Tokenizer {
            corpus,
            vocab,
            output,
        } => {
            let books: Vec<_> = read_manifest(&corpus)?
                .into_iter()
                .filter(|b| b.split == Split::Train)
                .collect();
            eprintln!(
                "training a {vocab}-entry BPE on {} books of {}",
                books.len(),
                corpus.display()
            );
            let texts = books
                .iter()
                .map(|b| b.read_text())
                .collect::<Result<Vec<_>, _>>()?;
            let tokenizer = BookTokenizer::train(texts.into_iter(), vocab, true)?;
            tokenizer.save(&output)?;
            eprintln!(
                "wrote {} ({} entries)",
                output.display(),
                tokenizer.vocab_size()
            );
        }
        Command::Encode {
            corpus,
            tokenizer,
            split,
            max_books,
            output,
        } => {
            let tokenizer = BookTokenizer::load(&tokenizer)?;
            let want = match split {
                SplitArg::Train => Split::Train,
                SplitArg::Dev => Split::Dev,
            };
            let mut books: Vec<_> = read_manifest(&corpus)?
                .into_iter()
                .filter(|b| b.split == want)
                .collect();
            if max_books > 0 {
                books.truncate(max_books);
            }
            let store = TokenStore::encode(&books, &tokenizer, |done, total| {
                eprint!("\rencoded {done}/{total} books");
                let _ = std::io::stderr().flush();
            })?;
            eprintln!();
            store.save(&output)?;
            eprintln!("wrote {} ({} tokens)", output.display(), store.tokens.len());
        }
        Command::Train {
            tokens,
            eval,
            tokenizer,
            preset,
            notes_off,
            seq_len,
            batch,
            steps,
            warmup,
            lr,
            min_lr,
            clip,
            seed,
            eval_every,
            eval_batches,
            checkpoint_every,
            passkey_share,
            multikey_share,
            recall_share,
            init,
            device,
            out,
        } => {
            let shares = [passkey_share, multikey_share, recall_share];
            if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 {
                bail!("the task shares must lie in 0..=1 and sum to at most 1; got {shares:?}");
            }
            let mut model = Config::preset(&preset)?;
            let tokenizer = BookTokenizer::load(&tokenizer)?;
            model.vocab_size = tokenizer.vocab_size();
            if notes_off {
                model.notes = false;
            }
            let config = TrainConfig {
                model,
                seq_len,
                batch,
                steps,
                warmup,
                peak_lr: lr,
                min_lr,
                clip,
                seed,
                mix: TaskMix {
                    passkey: passkey_share,
                    multikey: multikey_share,
                    recall: recall_share,
                    ..TaskMix::default()
                },
                optimizer: AdamWConfig::default(),
                eval_every,
                eval_batches,
                checkpoint_every,
            };
            let (device, notice) =
                memmamba::device::select(memmamba::device::parse_device(&device)?)?;
            if let Some(notice) = notice {
                eprintln!("{notice}");
            }
            let train = TokenStore::load(&tokens)?;
            let eval = eval.map(|p| TokenStore::load(&p)).transpose()?;
            let mut trainer = if out.join("checkpoint").exists() {
                let trainer = Trainer::resume(&out, config, &device)?;
                eprintln!("resuming {} at step {}", out.display(), trainer.step());
                trainer
            } else if let Some(init) = init {
                eprintln!("starting from the weights in {}", init.display());
                Trainer::from_weights(&init, config, &device)?
            } else {
                Trainer::new(config, &device)?
            };
            if trainer.step() >= trainer.config.steps {
                bail!("{} already reached step {}", out.display(), trainer.step());
            }
            std::fs::create_dir_all(&out)?;
            std::fs::write(
                out.join("config.json"),
                trainer.config.model.to_json_string(),
            )?;
            let log_path = out.join("log.jsonl");
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("{}", log_path.display()))?;
            trainer.run(&out, &train, eval.as_ref(), &tokenizer, |line| {
                let eval = line
                    .eval_loss
                    .map(|l| format!(" eval {l:.4}"))
                    .unwrap_or_default();
                eprintln!(
                    "step {:>6} loss {:.4}{eval} lr {:.2e} |g| {:.3} {:.0} tok/s",
                    line.step, line.loss, line.lr, line.grad_norm, line.tokens_per_s
                );
                if let Ok(json) = serde_json::to_string(line) {
                    let _ = writeln!(log, "{json}");
                }
            })?;
            trainer.save_checkpoint(&out)?;
            let weights = out.join("model.safetensors");
            trainer.varmap.save(&weights)?;
            eprintln!("wrote {}", weights.display());
        }
        Command::Quantize { run, out } => {
            let (config, model) = load_run(&run, &Device::Cpu)?;
            std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
            let weights = out.join("model.safetensors");
            std::fs::write(&weights, model.quantized_weights_to_bytes()?)
                .with_context(|| format!("{}", weights.display()))?;
            let config_path = out.join("config.json");
            std::fs::write(&config_path, config.to_json_string())
                .with_context(|| format!("{}", config_path.display()))?;
            println!("wrote {} and {}", weights.display(), config_path.display());
        }
        Command::Eval {
            run,
            tokens,
            tokenizer,
            contexts,
            windows,
            passkey_lengths,
            depths,
            trials,
            device,
        } => {
            let (_, model) = load_run(&run, &open_device(&device)?)?;
            let tokenizer = BookTokenizer::load(&tokenizer)?;
            let store = TokenStore::load(&tokens)?;
            println!(
                "## Perplexity vs context ({}, last 100 tokens of each window)\n",
                run.display()
            );
            println!("| context | windows | perplexity |\n|---:|---:|---:|");
            for row in perplexity_vs_context(&model, &store, &contexts, windows, 100, 1)? {
                println!(
                    "| {} | {} | {:.2} |",
                    row.context, row.windows, row.perplexity
                );
            }
            println!("\n## Pass-key accuracy (correct/trials)\n");
            print!("| length |");
            depths.iter().for_each(|d| print!(" depth {d} |"));
            println!("\n|---:|{}", "---:|".repeat(depths.len()));
            let cells = passkey_grid(
                &model,
                &tokenizer,
                &store,
                &passkey_lengths,
                &depths,
                trials,
                1,
            )?;
            for chunk in cells.chunks(depths.len()) {
                print!("| {} |", chunk[0].length);
                chunk
                    .iter()
                    .for_each(|c| print!(" {}/{} |", c.correct, c.trials));
                println!();
            }
        }
    }
    Ok(())
}
