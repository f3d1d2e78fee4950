//! Fresh weights drawn from a seeded generator instead of candle's unseedable one, so that a
//! seed gives the same model on every run and every machine (training runs, tests).

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarMap};

use crate::Rng;

/// A [`VarMap`] backend that creates each missing variable from its initialisation hint with
/// values drawn from one [`Rng`], in the order the variables are asked for.
pub(crate) struct SeededVarMap {
    varmap: VarMap,
    rng: Mutex<Rng>,
}

impl SeededVarMap {
    pub(crate) fn new(varmap: &VarMap, seed: u64) -> Self {
        Self {
            varmap: varmap.clone(),
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    fn draw(&self, shape: &Shape, init: Init) -> candle_core::Result<Vec<f32>> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().map_err(|_| {
            candle_core::Error::Msg("the seeded generator's lock is poisoned".into())
        })?;
        let uniform = |rng: &mut Rng, lo: f64, up: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (lo + (up - lo) * rng.unit()) as f32)
                .collect()
        };
        let normal = |rng: &mut Rng, mean: f64, stdev: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (mean + stdev * rng.normal()) as f32)
                .collect()
        };
        Ok(match init {
            Init::Const(value) => vec![value as f32; n],
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            // As candle's own `Init::var`.
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, -bound, bound)
                    }
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        })
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if self
            .varmap
            .data()
            .lock()
            .is_ok_and(|vars| vars.contains_key(name))
        {
            return self.varmap.get(shape, name, init, dtype, device);
        }
        let values = Tensor::from_vec(self.draw(&shape, init)?, shape, device)?;
        let var = Var::from_tensor(&values.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("the variable map's lock is poisoned".into()))?
            .insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.varmap.get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.contains_tensor(name)
    }
}
