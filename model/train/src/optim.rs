//! AdamW with decoupled weight decay, applied only to the parameters that should decay, and a
//! state that can be saved and loaded so a resumed run continues exactly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::TrainError;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// Whether a parameter takes weight decay: matrices do; biases, norm scales and Mamba's
/// `A_log` and `D` (MODEL.md section 2) do not.
pub fn decays(name: &str) -> bool {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    !(leaf == "bias" || leaf == "A_log" || leaf == "D" || name.contains("norm"))
}

struct Slot {
    name: String,
    var: Var,
    // the moments are variables so that each step writes them in place: new tensors every
    // step would land wherever the GPU's memory pool had room among the step's activations,
    // and the pool would grow step after step around them
    m: Var,
    v: Var,
    decay: bool,
    /// This parameter's learning rate as a fraction of the step's (1 unless scaled).
    lr_scale: f64,
}

pub struct AdamW {
    slots: Vec<Slot>,
    config: AdamWConfig,
    step: u64,
}

/// The gradients of an optimizer's parameters, in its slot order. A backward pass's
/// `GradStore` also keeps the gradients of constant operands (one-hot selections, masks), as
/// large as activations; taking only these lets it go before the next micro-batch's pass.
pub struct Gradients(Vec<Option<Tensor>>);

impl Gradients {
    /// The parameters' gradients (those that had one in the backward pass).
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.0.iter().flatten()
    }

    /// Adds `other` (of the same optimizer) to these.
    pub fn add(&mut self, other: Gradients) -> Result<(), TrainError> {
        for (sum, g) in self.0.iter_mut().zip(other.0) {
            *sum = match (sum.take(), g) {
                (Some(s), Some(g)) => Some((s + g)?),
                (s, g) => s.or(g),
            };
        }
        Ok(())
    }
}

impl AdamW {
    /// One slot per named variable, in name order (so saved states line up).
    pub fn new(vars: HashMap<String, Var>, config: AdamWConfig) -> Result<Self, TrainError> {
        let mut named: Vec<(String, Var)> = vars.into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = named
            .into_iter()
            .map(|(name, var)| {
                let m = Var::from_tensor(&var.zeros_like()?)?;
                let v = Var::from_tensor(&var.zeros_like()?)?;
                let decay = decays(&name);
                Ok(Slot {
                    name,
                    var,
                    m,
                    v,
                    decay,
                    lr_scale: 1.0,
                })
            })
            .collect::<Result<Vec<_>, candle_core::Error>>()?;
        Ok(AdamW {
            slots,
            config,
            step: 0,
        })
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Gives the parameters whose names `applies` to a learning rate of `scale` times the
    /// step's (weight decay included, as it is applied at the learning rate).
    pub fn scale_learning_rate(&mut self, applies: impl Fn(&str) -> bool, scale: f64) {
        for slot in self.slots.iter_mut().filter(|slot| applies(&slot.name)) {
            slot.lr_scale = scale;
        }
    }

    /// The gradients of the parameters out of a backward pass's `store`, detached. candle
    /// detaches the gradients of intermediate tensors but not those of variables, which keep
    /// the graph they were computed by (the step's activations); a moment computed from them
    /// would then hold that graph, and every step's moments the previous step's: training's
    /// memory grew by about 400 MB a step on a GPU until it ran out.
    pub fn gradients(&self, store: &GradStore) -> Gradients {
        Gradients(
            self.slots
                .iter()
                .map(|slot| store.get(slot.var.as_tensor()).map(Tensor::detach))
                .collect(),
        )
    }

    /// The global L2 norm of the gradients of all parameters.
    pub fn grad_norm(&self, grads: &Gradients) -> Result<f64, TrainError> {
        let mut total = 0f64;
        for g in grads.tensors() {
            total += g
                .to_dtype(DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()? as f64;
        }
        Ok(total.sqrt())
    }

    /// One update at learning rate `lr`, with the gradients scaled by `grad_scale` (for
    /// clipping). A parameter without a gradient is left as it is.
    pub fn step(&mut self, grads: &Gradients, lr: f64, grad_scale: f64) -> Result<(), TrainError> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        for (slot, g) in self.slots.iter_mut().zip(&grads.0) {
            let Some(g) = g else {
                continue;
            };
            let lr = lr * slot.lr_scale;
            let g = (g * grad_scale)?;
            let m = ((slot.m.as_tensor() * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((slot.v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + c.eps)?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
            let theta = slot.var.as_tensor();
            let decayed = if slot.decay {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            slot.var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Writes the moments and the step count as safetensors (`m.NAME`, `v.NAME`, `step`).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            tensors.insert(format!("m.{}", slot.name), slot.m.as_tensor().clone());
            tensors.insert(format!("v.{}", slot.name), slot.v.as_tensor().clone());
        }
        let device = self
            .slots
            .first()
            .map(|s| s.m.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        tensors.insert(
            "step".to_string(),
            Tensor::new(&[self.step as i64], &device)?,
        );
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Restores a state written by [`AdamW::save`] for the same parameters.
    pub fn load(&mut self, path: &Path) -> Result<(), TrainError> {
        let device = self
            .slots
            .first()
            .map(|s| s.m.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let mut tensors = candle_core::safetensors::load(path, &device)?;
        let mismatch = |what: String| TrainError::format(path, what);
        for slot in &self.slots {
            for (key, moment) in [
                (format!("m.{}", slot.name), &slot.m),
                (format!("v.{}", slot.name), &slot.v),
            ] {
                let t = tensors
                    .remove(&key)
                    .ok_or_else(|| mismatch(format!("no {key}")))?;
                if t.dims() != moment.dims() {
                    return Err(mismatch(format!(
                        "{key}: shape {:?}, the model has {:?}",
                        t.dims(),
                        moment.dims()
                    )));
                }
                moment.set(&t.to_dtype(moment.dtype())?)?;
            }
        }
        let step = tensors
            .remove("step")
            .ok_or_else(|| mismatch("no step".to_string()))?;
        self.step = step.to_vec1::<i64>()?.first().copied().unwrap_or(0) as u64;
        Ok(())
    }
}

/// Linear warmup to `peak` over `warmup` steps, then cosine decay to `floor` at `total`.
pub fn learning_rate(step: u64, warmup: u64, total: u64, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_moments_are_written_in_place_by_a_step_and_by_a_load() {
        let w = Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = AdamW::new(
            HashMap::from([("w".to_string(), w.clone())]),
            AdamWConfig::default(),
        )
        .unwrap();
        let ids = |opt: &AdamW| {
            (
                opt.slots[0].m.as_tensor().id(),
                opt.slots[0].v.as_tensor().id(),
            )
        };
        let before = ids(&opt);
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        let grads = opt.gradients(&loss.backward().unwrap());
        opt.step(&grads, 0.1, 1.0).unwrap();
        assert_eq!(
            ids(&opt),
            before,
            "a step must not put the moments in new tensors"
        );
        assert!(
            opt.slots[0]
                .m
                .as_tensor()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
        let file =
            std::env::temp_dir().join(format!("memmamba-optim-{}.safetensors", std::process::id()));
        opt.save(&file).unwrap();
        opt.load(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            ids(&opt),
            before,
            "a load must not put the moments in new tensors"
        );
    }
}
