//! `memmamba-train`: reproduces the shipped tokenizer and model.
//!
//! ```text
//! memmamba-train tokenizer --corpus ../shared/corpus -o assets/tokenizer.json
//! memmamba-train split-digits --tokenizer assets/tokenizer.json -o data/tokenizer.json
//! memmamba-train encode --corpus ../shared/corpus --split train -o data/train.tokens
//! memmamba-train train --tokens data/train.tokens --eval data/dev.tokens --out runs/small
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Parser, Subcommand, ValueEnum};
use memmamba::{Config, Gating, MemMamba};
use memmamba_train::corpus::{read_manifest, Split};
use memmamba_train::eval::Reading;
use memmamba_train::fidelity::FidelityConfig;
use memmamba_train::optim::AdamWConfig;
use memmamba_train::report::{evaluate, markdown, write_plots, EvalPlan, Measure};
use memmamba_train::tasks::TaskMix;
use memmamba_train::tokenizer::BookTokenizer;
use memmamba_train::tokens::TokenStore;
use memmamba_train::trainer::{load_model, Carry, TrainConfig, Trainer};

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

#[derive(Clone, Copy, ValueEnum)]
enum MeasureArg {
    Perplexity,
    Passkey,
    Multikey,
    Recall,
    Fidelity,
}

impl From<MeasureArg> for Measure {
    fn from(m: MeasureArg) -> Self {
        match m {
            MeasureArg::Perplexity => Measure::Perplexity,
            MeasureArg::Passkey => Measure::Passkey,
            MeasureArg::Multikey => Measure::Multikey,
            MeasureArg::Recall => Measure::Recall,
            MeasureArg::Fidelity => Measure::Fidelity,
        }
    }
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
    /// Writes the tokenizer with every number split into single digits (same vocabulary; see
    /// `BookTokenizer::with_digits_split`), for a model trained on from weights made with the
    /// first.
    SplitDigits {
        #[arg(long, default_value = "assets/tokenizer.json")]
        tokenizer: PathBuf,
        #[arg(short, long)]
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
        /// Samples per forward and backward pass (default: the whole batch): the same steps in
        /// less GPU memory, the batch's gradients summed over its micro-batches.
        #[arg(long)]
        micro_batch: Option<usize>,
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
        /// Loss weight of an answer token of a task sample, a text token weighing 1. A sample
        /// of 2,048 tokens has about five answer tokens, so at the default the answers are
        /// about 1% of its loss; a few hundred gives them about half.
        #[arg(long, default_value_t = TaskMix::default().answer_weight)]
        answer_weight: f32,
        /// Weight of the importance scorers' mean squared logit in the objective. Without it a
        /// scorer's logits drift past 16, where every score is 1.0 and the read path's
        /// gradient on them vanishes; 1e-3 keeps them within about +-10.
        #[arg(long, default_value_t = 0.0)]
        score_penalty: f64,
        /// Read each sample as this many sequences of --seq-len tokens, one after another, the
        /// memory carried between them and the gradient cut (truncated backpropagation): past
        /// the first, what the sample said before reaches the loss only through the memory.
        #[arg(long, default_value_t = Carry::default().segments)]
        segments: usize,
        /// Probability that a sample's recurrent state is zeroed between two of its sequences,
        /// its pools kept, so that only the notes carry what came before.
        #[arg(long, default_value_t = Carry::default().forget)]
        forget: f64,
        /// Keep the gradient across the sequences of a sample, so that an answer read after a
        /// forgotten recurrence trains how its notes were written (the whole sample's
        /// activation memory; see --micro-batch).
        #[arg(long)]
        carry_gradient: bool,
        /// Start from these trained weights (e.g. assets/model/model.safetensors) with a fresh
        /// optimizer, instead of the initialisation; ignored when --out holds a checkpoint.
        #[arg(long)]
        init: Option<PathBuf>,
        /// With --init: draw the read path (each layer's attention over the pools and its gate)
        /// afresh and keep the other weights, so that a model whose reads ignore its notes can
        /// learn to use them (docs/EVAL.md).
        #[arg(long, requires = "init")]
        fresh_read_path: bool,
        /// Train the note path alone (note blocks, attentions over the pools, gates); the
        /// embedding, norms and mixers keep the weights the run starts from. The same as
        /// --backbone-lr-scale 0.
        #[arg(long, conflicts_with_all = ["notes_off", "backbone_lr_scale"])]
        freeze_backbone: bool,
        /// The backbone's (embedding, norms, mixers) learning rate as a fraction of the note
        /// path's: below 1 the notes learn at --lr while the backbone only adapts to them.
        #[arg(long, default_value_t = 1.0, conflicts_with = "notes_off")]
        backbone_lr_scale: f64,
        /// Draw the model's predictions towards those of the model with these weights (e.g.
        /// the one --init starts from), which reads each sample whole: --distill is the
        /// weight of the mean KL divergence in the objective. Needed again on resume.
        #[arg(long, requires = "distill")]
        teacher: Option<PathBuf>,
        #[arg(long, requires = "teacher")]
        distill: Option<f64>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a trained run's weights 8-bit quantised per matrix row (the shipped form:
    /// assets/model/) with its config.json, and its tokenizer.json when it has one.
    Quantize {
        /// A run directory written by `train` (config.json + model.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// The folder to write config.json and model.safetensors into.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Measures trained models on held-out books (../shared/EVAL.md, model quality):
    /// perplexity vs context length, the pass-key grid, multi-key retrieval, recall of real
    /// text and the memory-fidelity curves (ETMF / ECLMF, ours), each model beside the others;
    /// markdown tables on stdout, PNG plots and results.json in --plots.
    Eval {
        /// A run directory (config.json + model.safetensors); repeat it to compare models,
        /// e.g. MemMamba and its notes-off baseline.
        #[arg(long, required = true)]
        run: Vec<PathBuf>,
        /// Token stream of held-out books (see scripts/heldout-books.sh).
        #[arg(long)]
        tokens: PathBuf,
        /// The tokenizer of runs that have no `tokenizer.json` of their own.
        #[arg(long, default_value = "assets/tokenizer.json")]
        tokenizer: PathBuf,
        /// Which measurements to run.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "perplexity,passkey,multikey,recall,fidelity"
        )]
        measure: Vec<MeasureArg>,
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
        /// Pass-key trials per cell: one count, or one per --passkey-lengths entry.
        #[arg(long, value_delimiter = ',', default_value = "20")]
        trials: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "1024,4096,16384,65536")]
        multikey_lengths: Vec<usize>,
        /// Numbers of keyed facts stated (at most 24).
        #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
        keys: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        multikey_trials: usize,
        /// Tokens between the quote and the question.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "256,1024,4096,16384,65536"
        )]
        recall_distances: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        recall_trials: usize,
        /// ETMF lags k.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
        fidelity_lags: Vec<usize>,
        /// Depths l probed (0 = the embeddings, n_layer = the last layer's output);
        /// default 0, n/4, n/2, 3n/4, n.
        #[arg(long, value_delimiter = ',')]
        fidelity_layers: Vec<usize>,
        /// Rows (one state each) to fit the probes on, from the books' first halves.
        #[arg(long, default_value_t = 768)]
        fidelity_fit_rows: usize,
        /// Rows to score them on, from the books' second halves.
        #[arg(long, default_value_t = 256)]
        fidelity_test_rows: usize,
        /// Rows read at once.
        #[arg(long, default_value_t = 16)]
        fidelity_batch: usize,
        /// Folder for the PNG plots and results.json.
        #[arg(long)]
        plots: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Read each run with summary pools of these sizes K instead of its own (the K sweep):
        /// one report per run and size.
        #[arg(long, value_delimiter = ',')]
        pool_slots: Vec<usize>,
        /// Pass keys and multi-key facts: apply the attention reads' gates softly, as training
        /// does, instead of skipping reads below tau2 as the app does.
        #[arg(long)]
        soft_gates: bool,
        /// Pass keys and multi-key facts: zero the recurrent state before the question, so that
        /// the answer can come from the notes alone.
        #[arg(long)]
        pool_only: bool,
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

/// A run's name in the tables: its folder's name, marked when its notes are off.
fn run_label(run: &Path, config: &Config) -> String {
    let name = run
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run.display().to_string());
    if config.notes {
        name
    } else {
        format!("{name} (notes off)")
    }
}

/// A run's (or model folder's) tokenizer: its own `tokenizer.json` when it has one (training
/// writes the one it used), else `fallback`.
fn run_tokenizer(run: &Path, fallback: &Path) -> Result<BookTokenizer> {
    let own = run.join("tokenizer.json");
    Ok(BookTokenizer::load(if own.exists() {
        &own
    } else {
        fallback
    })?)
}

/// The model of a run directory (config.json + model.safetensors) on `device`.
fn load_run(run: &Path, device: &Device) -> Result<(Config, MemMamba)> {
    let config = run_config(run)?;
    let model = MemMamba::load(&config, run.join("model.safetensors"), device)?;
    Ok((config, model))
}

fn run_config(run: &Path) -> Result<Config> {
    let config_path = run.join("config.json");
    Ok(Config::from_json_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("{}", config_path.display()))?,
    )?)
}

/// A run's model with summary pools of `pool_slots` slots instead of its own: the weights do
/// not depend on the pool's size, so one trained model can be read with several (MODEL.md's K
/// sweep).
fn load_run_with_pool(
    run: &Path,
    pool_slots: usize,
    device: &Device,
) -> Result<(Config, MemMamba)> {
    let mut config = run_config(run)?;
    config.pool_slots = pool_slots;
    config.validate()?;
    let model = MemMamba::load_shared(&config, run.join("model.safetensors"), device)?;
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
        Command::SplitDigits { tokenizer, output } => {
            BookTokenizer::load(&tokenizer)?
                .with_digits_split()?
                .save(&output)?;
            eprintln!("wrote {}", output.display());
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
            micro_batch,
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
            answer_weight,
            score_penalty,
            segments,
            forget,
            carry_gradient,
            init,
            fresh_read_path,
            freeze_backbone,
            backbone_lr_scale,
            teacher,
            distill,
            device,
            out,
        } => {
            let shares = [passkey_share, multikey_share, recall_share];
            if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 {
                bail!("the task shares must lie in 0..=1 and sum to at most 1; got {shares:?}");
            }
            if !(answer_weight.is_finite() && answer_weight > 0.0) {
                bail!("--answer-weight must be a positive number; got {answer_weight}");
            }
            if !(score_penalty.is_finite() && score_penalty >= 0.0) {
                bail!("--score-penalty must be a number >= 0; got {score_penalty}");
            }
            if segments == 0 {
                bail!("--segments must be at least 1");
            }
            if !(0.0..=1.0).contains(&forget) {
                bail!("--forget must be a probability in 0..=1; got {forget}");
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
                    answer_weight,
                },
                optimizer: AdamWConfig::default(),
                eval_every,
                eval_batches,
                checkpoint_every,
                score_penalty,
                carry: Carry {
                    segments,
                    forget,
                    gradient_across: carry_gradient,
                },
                backbone_lr_scale: if freeze_backbone {
                    0.0
                } else {
                    backbone_lr_scale
                },
                distill: distill.unwrap_or(0.0),
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
                let trainer = Trainer::from_weights(&init, config, &device)?;
                if fresh_read_path {
                    let replaced = trainer.model.reinit_read_path(trainer.config.seed)?;
                    eprintln!("drew the read path afresh ({replaced} tensors)");
                }
                trainer
            } else {
                Trainer::new(config, &device)?
            };
            if let Some(size) = micro_batch {
                trainer.set_micro_batch(size);
            }
            if trainer.step() >= trainer.config.steps {
                bail!("{} already reached step {}", out.display(), trainer.step());
            }
            if let Some(teacher) = teacher {
                let model = load_model(&trainer.config.model, &teacher, &device)
                    .with_context(|| format!("the teacher {}", teacher.display()))?;
                trainer.set_teacher(model)?;
            }
            std::fs::create_dir_all(&out)?;
            std::fs::write(
                out.join("config.json"),
                trainer.config.model.to_json_string(),
            )?;
            tokenizer.save(&out.join("tokenizer.json"))?;
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
                let kl = if line.divergence > 0.0 {
                    format!(" kl {:.4}", line.divergence)
                } else {
                    String::new()
                };
                eprintln!(
                    "step {:>6} loss {:.4}{eval}{kl} lr {:.2e} |g| {:.3} {:.0} tok/s logit^2 {:.1}",
                    line.step,
                    line.loss,
                    line.lr,
                    line.grad_norm,
                    line.tokens_per_s,
                    line.score_logit_sq
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
            let tokenizer = run.join("tokenizer.json");
            if tokenizer.exists() {
                let copy = out.join("tokenizer.json");
                std::fs::copy(&tokenizer, &copy).with_context(|| format!("{}", copy.display()))?;
                println!("wrote {}", copy.display());
            }
        }
        Command::Eval {
            run,
            tokens,
            tokenizer,
            measure,
            contexts,
            windows,
            passkey_lengths,
            depths,
            trials,
            multikey_lengths,
            keys,
            multikey_trials,
            recall_distances,
            recall_trials,
            fidelity_lags,
            fidelity_layers,
            fidelity_fit_rows,
            fidelity_test_rows,
            fidelity_batch,
            plots,
            seed,
            pool_slots,
            soft_gates,
            pool_only,
            device,
        } => {
            let device = open_device(&device)?;
            let store = TokenStore::load(&tokens)?;
            let plan = EvalPlan {
                measures: measure.into_iter().map(Measure::from).collect(),
                contexts,
                windows,
                scored: 100,
                passkey_lengths,
                depths,
                passkey_trials: trials,
                multikey_lengths,
                keys,
                multikey_trials,
                reading: Reading {
                    gating: if soft_gates {
                        Gating::Soft
                    } else {
                        Gating::Sparse
                    },
                    pool_only,
                },
                recall_distances,
                recall_trials,
                fidelity: FidelityConfig {
                    lags: fidelity_lags,
                    layers: fidelity_layers,
                    fit_rows: fidelity_fit_rows,
                    test_rows: fidelity_test_rows,
                    lead: 64,
                    batch: fidelity_batch,
                    seed,
                },
                seed,
            };
            let mut reports = Vec::new();
            let models = run.iter().flat_map(|dir| {
                let own = pool_slots.is_empty().then_some(None);
                own.into_iter()
                    .chain(pool_slots.iter().map(|&k| Some(k)))
                    .map(move |k| (dir, k))
            });
            for (dir, k) in models {
                let (config, model) = match k {
                    None => load_run(dir, &device)?,
                    Some(k) => load_run_with_pool(dir, k, &device)?,
                };
                let tokenizer = run_tokenizer(dir, &tokenizer)?;
                let label = match k {
                    None => run_label(dir, &config),
                    Some(k) => format!("{} K {k}", run_label(dir, &config)),
                };
                let started = std::time::Instant::now();
                let report = evaluate(&label, &model, &tokenizer, &store, &plan, |what| {
                    eprintln!("{label}: {what} ({:.0} s)", started.elapsed().as_secs_f64())
                })?;
                eprintln!("{label}: done in {:.0} s", started.elapsed().as_secs_f64());
                reports.push(report);
            }
            print!("{}", markdown(&reports, &plan));
            if let Some(dir) = plots {
                for file in write_plots(&reports, &dir)? {
                    eprintln!("wrote {}", file.display());
                }
            }
        }
    }
    Ok(())
}
