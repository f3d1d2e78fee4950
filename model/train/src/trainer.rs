//! The training loop: batches drawn deterministically from `(seed, step)`, weighted
//! cross-entropy, global-norm clipping, AdamW with warmup and cosine decay, periodic evaluation,
//! and checkpoints written atomically that resume to the same next loss.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use memmamba::{Config, Gating, MemMamba};
use serde::{Deserialize, Serialize};

use crate::loss::{divergence_sum, log_probs, weighted_cross_entropy};
use crate::optim::{learning_rate, AdamW, AdamWConfig, Gradients};
use crate::tasks::{draw_sample, Sample, TaskMix};
use crate::tokenizer::BookTokenizer;
use crate::tokens::TokenStore;
use crate::TrainError;
use memmamba::Rng;

/// Everything that defines a run besides its data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub model: Config,
    pub seq_len: usize,
    pub batch: usize,
    pub steps: u64,
    pub warmup: u64,
    pub peak_lr: f64,
    pub min_lr: f64,
    pub clip: f64,
    pub seed: u64,
    pub mix: TaskMix,
    pub optimizer: AdamWConfig,
    pub eval_every: u64,
    pub eval_batches: usize,
    pub checkpoint_every: u64,
    /// Weight in the objective of the importance scorers' mean squared logit (0: none). A
    /// scorer whose logits drift deep into the sigmoid's tail gets no gradient through the
    /// read path (`ln s` is flat there) and ranks notes by noise; this keeps them in range.
    #[serde(default)]
    pub score_penalty: f64,
    /// How many sequences of `seq_len` tokens a sample holds, and how the memory passes
    /// between them.
    #[serde(default)]
    pub carry: Carry,
    /// The backbone's learning rate as a fraction of the note path's
    /// ([`memmamba::block::in_note_path`]: the note blocks, the attentions over the pools and
    /// their gates). 1 trains the whole model alike; 0 freezes the backbone (the embedding,
    /// norms and mixers keep the weights the run started from, and with them what the
    /// recurrence has learned); in between, the note path can learn fast while the backbone
    /// only adapts to it.
    #[serde(default = "full_rate")]
    pub backbone_lr_scale: f64,
    /// Weight in the objective of the mean divergence `KL(teacher || model)` over the targets
    /// that have a loss weight (0: none; [`Trainer::set_teacher`] gives the teacher). The
    /// teacher reads each sample whole, its recurrence never forgotten, so the model is drawn
    /// towards the predictions of a reader that saw everything before: what the teacher knew
    /// of the text stays, and what the model lost with a forgotten recurrence has to come
    /// from its notes.
    #[serde(default)]
    pub distill: f64,
}

fn full_rate() -> f64 {
    1.0
}

/// A sample read as `segments` sequences of `seq_len` tokens, one after another from one
/// memory, by default with the gradient cut between them (truncated backpropagation through the
/// document). Past the first sequence, a fact stated earlier reaches the loss only through what
/// the memory carried: so training teaches the model to answer from its pool beyond one
/// sequence's length.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Carry {
    /// Sequences per sample (1: every sample is one sequence from an empty memory).
    pub segments: usize,
    /// Probability that a sample's mixers' recurrent state is zeroed at a boundary between two
    /// of its sequences, its pools kept: there, what came before is only in the notes.
    pub forget: f64,
    /// Keep the gradient across the boundaries: a later sequence's loss then trains how the
    /// notes it reads were written and scored in the sequences before, which a cut gradient
    /// never does (the reader learns, the writer does not). Costs the activation memory of
    /// the whole sample instead of one sequence's.
    #[serde(default)]
    pub gradient_across: bool,
}

impl Default for Carry {
    fn default() -> Self {
        Carry {
            segments: 1,
            forget: 0.0,
            gradient_across: false,
        }
    }
}

/// One line of the training log (also written as JSON lines to `log.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    pub step: u64,
    pub loss: f64,
    pub eval_loss: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    /// Mean squared importance-scorer logit over the step's tokens and note layers.
    #[serde(default)]
    pub score_logit_sq: f64,
    /// The mean divergence from the teacher's predictions (0 without distillation).
    #[serde(default)]
    pub divergence: f64,
}

/// What one optimisation step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The weighted cross-entropy before the update (the score penalty not included).
    pub loss: f64,
    /// The gradient's global norm before clipping.
    pub grad_norm: f64,
    /// The mean divergence from the teacher's predictions (0 without distillation).
    pub divergence: f64,
    /// Mean squared importance-scorer logit (0 with notes off).
    pub score_logit_sq: f64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    config: TrainConfig,
    step: u64,
}

/// A model with its variables, optimiser and the step it has reached.
pub struct Trainer {
    pub config: TrainConfig,
    pub varmap: VarMap,
    pub model: MemMamba,
    /// The model whose predictions `config.distill` draws this one towards.
    teacher: Option<MemMamba>,
    optimizer: AdamW,
    step: u64,
    device: Device,
    /// Samples per forward and backward pass; a step's batch is split into micro-batches of
    /// this size and their gradients summed (the same step, less activation memory).
    micro_batch: usize,
}

const CHECKPOINT: &str = "checkpoint";

/// What reading one sequence of a batch gives the loss.
struct SequencePass {
    /// The weighted cross-entropy, differentiable.
    loss: Tensor,
    /// The importance scorers' logits, one tensor per layer with notes, differentiable.
    score_logits: Vec<Tensor>,
    /// The sum of the sequence's loss weights.
    weight: f64,
    /// When training (not measuring) with `config.distill`: the sum of the sequence's
    /// divergences from the teacher, differentiable.
    divergence: Option<Tensor>,
}

impl Trainer {
    /// A fresh model with the official initialisation.
    pub fn new(config: TrainConfig, device: &Device) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        let model = MemMamba::init(&config.model, &varmap, device, config.seed)?;
        Self::with_model(config, model, device)
    }

    /// A run that starts from trained weights (a weights file as `MemMamba::load` reads it,
    /// 8-bit quantised ones included) with a fresh optimizer: how the shipped model is trained
    /// further in a later session, whose GPU host cannot receive the optimizer's moments. The
    /// weights must have been made for `config.model`, except that a notes-off run may start
    /// from a MemMamba's weights of the same size, without its note block: the baseline then
    /// has seen the same tokens as the MemMamba it is compared with.
    pub fn from_weights(
        weights: &Path,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let model = load_model(&config.model, weights, device)?;
        Self::with_model(config, model, device)
    }

    fn with_model(
        config: TrainConfig,
        model: MemMamba,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let varmap = model.varmap().clone();
        let mut trained = varmap
            .data()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let scale = config.backbone_lr_scale;
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(TrainError::Config(format!(
                "the backbone's learning-rate scale must be a number >= 0; got {scale}"
            )));
        }
        if scale == 0.0 {
            trained.retain(|name, _| memmamba::block::in_note_path(name));
            if trained.is_empty() {
                return Err(TrainError::Config(
                    "a frozen backbone leaves nothing to train in a model without notes".into(),
                ));
            }
        }
        if !(config.distill.is_finite() && config.distill >= 0.0) {
            return Err(TrainError::Config(format!(
                "the distillation weight must be a number >= 0; got {}",
                config.distill
            )));
        }
        let mut optimizer = AdamW::new(trained, config.optimizer)?;
        optimizer.scale_learning_rate(|name| !memmamba::block::in_note_path(name), scale);
        Ok(Trainer {
            micro_batch: config.batch,
            config,
            varmap,
            model,
            teacher: None,
            optimizer,
            step: 0,
            device: device.clone(),
        })
    }

    /// Continues the run whose checkpoint is in `dir`; `config` must be the one it was started
    /// with (a different one is an error, not a silent change of course).
    pub fn resume(dir: &Path, config: TrainConfig, device: &Device) -> Result<Self, TrainError> {
        let path = dir.join(CHECKPOINT);
        let meta_path = path.join("meta.json");
        let meta: CheckpointMeta = serde_json::from_slice(
            &std::fs::read(&meta_path).map_err(|e| TrainError::io(&meta_path, e))?,
        )
        .map_err(|e| TrainError::format(&meta_path, e.to_string()))?;
        if meta.config != config {
            return Err(TrainError::format(
                &meta_path,
                "the checkpoint was made with another training configuration",
            ));
        }
        let mut trainer = Trainer::new(config, device)?;
        trainer.varmap.load(path.join("model.safetensors"))?;
        trainer
            .optimizer
            .load(&path.join("optimizer.safetensors"))?;
        trainer.step = meta.step;
        Ok(trainer)
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    /// The teacher of `config.distill`: a model of the same vocabulary, never trained here.
    pub fn set_teacher(&mut self, teacher: MemMamba) -> Result<(), TrainError> {
        let (ours, theirs) = (self.config.model.vocab_size, teacher.config().vocab_size);
        if ours != theirs {
            return Err(TrainError::Config(format!(
                "the teacher predicts over {theirs} tokens, the model over {ours}"
            )));
        }
        self.teacher = Some(teacher);
        Ok(())
    }

    /// Writes the checkpoint to a temporary directory and renames it over the old one, so a
    /// crash mid-write leaves the previous checkpoint intact.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf, TrainError> {
        let tmp = dir.join(format!("{CHECKPOINT}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        self.varmap.save(tmp.join("model.safetensors"))?;
        self.optimizer.save(&tmp.join("optimizer.safetensors"))?;
        let meta = CheckpointMeta {
            config: self.config.clone(),
            step: self.step,
        };
        let meta_path = tmp.join("meta.json");
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| TrainError::format(&meta_path, e.to_string()))?;
        std::fs::write(&meta_path, json).map_err(|e| TrainError::io(&meta_path, e))?;
        let path = dir.join(CHECKPOINT);
        let old = dir.join(format!("{CHECKPOINT}.old"));
        let _ = std::fs::remove_dir_all(&old);
        if path.exists() {
            std::fs::rename(&path, &old).map_err(|e| TrainError::io(&path, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| TrainError::io(&path, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(path)
    }

    /// The batch of step `step`: the same for every run with the same seed.
    pub fn batch(
        &self,
        store: &TokenStore,
        tokenizer: &BookTokenizer,
        step: u64,
    ) -> Result<Vec<Sample>, TrainError> {
        self.draw_batch(store, tokenizer, Rng::for_step(self.config.seed, step))
    }

    fn draw_batch(
        &self,
        store: &TokenStore,
        tokenizer: &BookTokenizer,
        mut rng: Rng,
    ) -> Result<Vec<Sample>, TrainError> {
        let c = &self.config;
        let segments = c.carry.segments;
        (0..c.batch)
            .map(|_| {
                let mut sample =
                    draw_sample(store, tokenizer, &c.mix, c.seq_len * segments, &mut rng)?;
                sample.forget_recurrence =
                    (1..segments).map(|_| rng.unit() < c.carry.forget).collect();
                Ok(sample)
            })
            .collect()
    }

    /// The weighted loss of `samples` (no update), a scalar cut off the graph.
    pub fn loss(&self, samples: &[Sample]) -> Result<Tensor, TrainError> {
        let total_weight = loss_weight(samples, ..);
        let mut loss = Tensor::zeros((), candle_core::DType::F32, &self.device)?;
        // One micro-batch at a time and the gradient always cut, so that measuring takes no
        // more memory than a training pass.
        for part in samples.chunks(self.micro_batch) {
            self.for_each_sequence(part, true, |pass| {
                loss = (&loss + (pass.loss.detach() * (pass.weight / total_weight))?)?;
                Ok(())
            })?;
        }
        Ok(loss)
    }

    /// Reads `samples` sequence by sequence ([`Carry`]) from an empty memory, and calls `each`
    /// with every sequence's [`SequencePass`]. Between two sequences the memory is detached
    /// (when `cut` or unless the gradient goes across), and the recurrent state of the samples
    /// that mark it forgotten is zeroed; the teacher's never is.
    fn for_each_sequence(
        &self,
        samples: &[Sample],
        cut: bool,
        mut each: impl FnMut(SequencePass) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        let segments = self.config.carry.segments.max(1);
        let len = samples.first().map_or(0, |s| s.weights.len()) / segments;
        let mut state = self
            .model
            .new_state(samples.len())?
            .with_gating(Gating::Soft);
        let mut teacher = match &self.teacher {
            _ if cut || self.config.distill == 0.0 => None,
            Some(model) => {
                let state = model.new_state(samples.len())?.with_gating(Gating::Soft);
                Some((model, state))
            }
            None => {
                return Err(TrainError::Config(
                    "distillation needs a teacher (Trainer::set_teacher)".into(),
                ))
            }
        };
        for k in 0..segments {
            if k > 0 {
                if cut || !self.config.carry.gradient_across {
                    state.detach();
                }
                let forget: Vec<bool> = samples
                    .iter()
                    .map(|s| s.forget_recurrence.get(k - 1).copied().unwrap_or(false))
                    .collect();
                state.forget_recurrence(&forget)?;
            }
            let from = k * len;
            let (inputs, targets, weights) = to_tensors(samples, from, len, &self.device)?;
            let (logits, score_logits) = self.model.forward_from(&mut state, &inputs)?;
            let predicted = log_probs(&logits)?;
            let loss = weighted_cross_entropy(&predicted, &targets, &weights)?;
            let divergence = match &mut teacher {
                Some((model, state)) => {
                    let (taught, _) = model.forward_from(state, &inputs)?;
                    state.detach();
                    Some(divergence_sum(&predicted, &log_probs(&taught)?, &weights)?)
                }
                None => None,
            };
            each(SequencePass {
                loss,
                score_logits,
                weight: loss_weight(samples, from..from + len),
                divergence,
            })?;
        }
        Ok(())
    }

    /// Runs each step's forward and backward passes over `size` samples at a time (at least 1;
    /// by default the whole batch). The step is the same up to float rounding; only the
    /// activation memory, which grows with the tokens of one pass, shrinks.
    pub fn set_micro_batch(&mut self, size: usize) {
        self.micro_batch = size.max(1);
    }

    /// One optimisation step on `samples`.
    pub fn train_step(&mut self, samples: &[Sample]) -> Result<StepStats, TrainError> {
        let c = &self.config;
        let lr = learning_rate(self.step, c.warmup, c.steps, c.peak_lr, c.min_lr);
        let (loss, score_logit_sq, divergence, grads) = self.loss_and_gradients(samples)?;
        let grad_norm = self.optimizer.grad_norm(&grads)?;
        let scale = if grad_norm > self.config.clip {
            self.config.clip / (grad_norm + 1e-6)
        } else {
            1.0
        };
        self.optimizer.step(&grads, lr, scale)?;
        self.step += 1;
        Ok(StepStats {
            loss,
            grad_norm,
            divergence,
            score_logit_sq,
        })
    }

    /// The weighted loss of `samples`, the mean squared scorer logit, the mean divergence from
    /// the teacher and the gradients of the objective (the loss, plus `score_penalty` times the
    /// mean squared logit, plus `distill` times the mean divergence), one micro-batch and one
    /// sequence at a time: the loss is `sum(w * nll) / sum(w)` over all samples, so each pass's
    /// own weighted mean counts with its share of the total weight, its mean squared logit with
    /// its share of the tokens, and its sum of divergences over all the weighted targets.
    fn loss_and_gradients(
        &self,
        samples: &[Sample],
    ) -> Result<(f64, f64, f64, Gradients), TrainError> {
        let total_weight = loss_weight(samples, ..);
        let distilled = samples
            .iter()
            .flat_map(|s| &s.weights)
            .filter(|&&w| w > 0.0)
            .count()
            .max(1) as f64;
        let segments = self.config.carry.segments.max(1);
        let (mut loss, mut score_logit_sq, mut divergence) = (0.0, 0.0, 0.0);
        let mut summed: Option<Gradients> = None;
        for part in samples.chunks(self.micro_batch) {
            // The loss is a mean over loss weights, the logits' over tokens (samples alike).
            let token_share = part.len() as f64 / (samples.len() * segments) as f64;
            self.for_each_sequence(part, false, |pass| {
                let loss_share = pass.weight / total_weight;
                let part_sq = mean_square(&pass.score_logits, &self.device)?;
                loss += pass.loss.to_scalar::<f32>()? as f64 * loss_share;
                score_logit_sq += part_sq.to_scalar::<f32>()? as f64 * token_share;
                let mut objective = ((pass.loss * loss_share)?
                    + (part_sq * (self.config.score_penalty * token_share))?)?;
                if let Some(part_kl) = pass.divergence {
                    divergence += part_kl.to_scalar::<f32>()? as f64 / distilled;
                    objective = (objective + (part_kl * (self.config.distill / distilled))?)?;
                }
                let grads = self.optimizer.gradients(&objective.backward()?);
                match &mut summed {
                    None => summed = Some(grads),
                    Some(sum) => sum.add(grads)?,
                }
                Ok(())
            })?;
        }
        let grads = summed.ok_or_else(|| candle_core::Error::Msg("an empty batch".into()))?;
        Ok((loss, score_logit_sq, divergence, grads))
    }

    /// Mean loss over `eval_batches` fixed batches of `store` (drawn with a seed of their own).
    pub fn evaluate(
        &self,
        store: &TokenStore,
        tokenizer: &BookTokenizer,
    ) -> Result<f64, TrainError> {
        let mut total = 0.0;
        for i in 0..self.config.eval_batches {
            let rng = Rng::for_step(self.config.seed ^ 0xE7A1, i as u64);
            let samples = self.draw_batch(store, tokenizer, rng)?;
            total += self.loss(&samples)?.to_scalar::<f32>()? as f64;
        }
        Ok(total / self.config.eval_batches.max(1) as f64)
    }

    /// Trains until `config.steps`, checkpointing into `dir` and reporting each step to `log`.
    pub fn run(
        &mut self,
        dir: &Path,
        train: &TokenStore,
        eval: Option<&TokenStore>,
        tokenizer: &BookTokenizer,
        mut log: impl FnMut(&LogLine),
    ) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        while self.step < self.config.steps {
            let started = Instant::now();
            let samples = self.batch(train, tokenizer, self.step)?;
            let lr = learning_rate(
                self.step,
                self.config.warmup,
                self.config.steps,
                self.config.peak_lr,
                self.config.min_lr,
            );
            let stats = self.train_step(&samples)?;
            let tokens =
                (self.config.batch * self.config.seq_len * self.config.carry.segments) as f64;
            let every =
                |n: u64| n > 0 && (self.step.is_multiple_of(n) || self.step == self.config.steps);
            let eval_loss = match eval {
                Some(store) if every(self.config.eval_every) => {
                    Some(self.evaluate(store, tokenizer)?)
                }
                _ => None,
            };
            log(&LogLine {
                step: self.step,
                loss: stats.loss,
                eval_loss,
                lr,
                grad_norm: stats.grad_norm,
                divergence: stats.divergence,
                tokens_per_s: tokens / started.elapsed().as_secs_f64(),
                score_logit_sq: stats.score_logit_sq,
            });
            if every(self.config.checkpoint_every) {
                self.save_checkpoint(dir)?;
            }
        }
        Ok(())
    }
}

/// Trained weights for a model of `config` (a notes-off one takes the note-free part of
/// MemMamba weights).
pub fn load_model(
    config: &Config,
    weights: &Path,
    device: &Device,
) -> Result<MemMamba, TrainError> {
    Ok(if config.notes {
        MemMamba::load(config, weights, device)?
    } else {
        MemMamba::load_shared(config, weights, device)?
    })
}

/// The mean over `tensors` of each one's mean square, a scalar; 0 for none.
fn mean_square(tensors: &[Tensor], device: &Device) -> candle_core::Result<Tensor> {
    let mut sum = Tensor::zeros((), candle_core::DType::F32, device)?;
    for t in tensors {
        sum = (sum + t.sqr()?.mean_all()?)?;
    }
    sum / tensors.len().max(1) as f64
}

/// The sum of the loss weights of `samples`' targets in `range`.
fn loss_weight(
    samples: &[Sample],
    range: impl std::slice::SliceIndex<[f32], Output = [f32]> + Clone,
) -> f64 {
    samples
        .iter()
        .flat_map(|s| &s.weights[range.clone()])
        .map(|&w| w as f64)
        .sum()
}

/// Inputs (B, L) u32, targets (B, L) u32 and weights (B, L) f32 of the `len` targets of
/// `samples` from target `from` on.
fn to_tensors(
    samples: &[Sample],
    from: usize,
    len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor), TrainError> {
    let b = samples.len();
    let mut inputs = Vec::with_capacity(b * len);
    let mut targets = Vec::with_capacity(b * len);
    let mut weights = Vec::with_capacity(b * len);
    for s in samples {
        inputs.extend_from_slice(&s.tokens[from..from + len]);
        targets.extend_from_slice(&s.tokens[from + 1..=from + len]);
        weights.extend_from_slice(&s.weights[from..from + len]);
    }
    Ok((
        Tensor::from_vec(inputs, (b, len), device)?,
        Tensor::from_vec(targets, (b, len), device)?,
        Tensor::from_vec(weights, (b, len), device)?,
    ))
}
