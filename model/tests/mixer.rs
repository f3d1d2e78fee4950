//! The Mamba-1 mixer (MODEL.md section 2): streaming, causality, state size, initialisation,
//! and agreement with a plain token-by-token Mamba-1 step.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::{ops::silu, VarBuilder, VarMap};
use common::max_abs_diff;
use memmamba::{Config, MambaMixer, MixerState};

const BATCH: usize = 2;
const LEN: usize = 20;

/// A freshly initialised tiny mixer under the prefix `mixer`, with the VarMap holding it.
fn fresh_mixer(cfg: &Config) -> (VarMap, MambaMixer) {
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap.clone(), DType::F32, &Device::Cpu);
    let mixer = MambaMixer::init(cfg, vb.pp("mixer"), &mut varmap).unwrap();
    (varmap, mixer)
}

fn weight(varmap: &VarMap, name: &str) -> Tensor {
    let data = varmap.data().lock().unwrap();
    data[&format!("mixer.{name}")].as_tensor().clone()
}

fn input(len: usize) -> Tensor {
    Tensor::randn(
        0f32,
        1f32,
        (BATCH, len, Config::tiny().d_model),
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn a_sequence_in_uneven_chunks_carrying_the_state_equals_one_call() {
    let cfg = Config::tiny();
    let (_, mixer) = fresh_mixer(&cfg);
    let u = input(LEN);
    let (whole, whole_state) = mixer.forward(&u, None).unwrap();

    let mut outputs = Vec::new();
    let mut state: Option<MixerState> = None;
    let mut start = 0;
    for size in [1, 3, 7, LEN - 11] {
        let (y, next) = mixer
            .forward(&u.narrow(1, start, size).unwrap(), state.as_ref())
            .unwrap();
        outputs.push(y);
        state = Some(next);
        start += size;
    }
    let chunked = Tensor::cat(&outputs, 1).unwrap();
    let state = state.unwrap();
    assert!(max_abs_diff(&whole, &chunked) < 1e-4);
    assert!(max_abs_diff(&whole_state.conv, &state.conv) < 1e-4);
    assert!(max_abs_diff(&whole_state.ssm, &state.ssm) < 1e-4);
}

#[test]
fn changing_later_tokens_leaves_earlier_outputs_unchanged() {
    let cfg = Config::tiny();
    let (_, mixer) = fresh_mixer(&cfg);
    let t = 9;
    let u = input(LEN);
    let changed = Tensor::cat(&[u.narrow(1, 0, t + 1).unwrap(), input(LEN - t - 1)], 1).unwrap();
    let (y, _) = mixer.forward(&u, None).unwrap();
    let (y_changed, _) = mixer.forward(&changed, None).unwrap();
    let prefix = |y: &Tensor| y.narrow(1, 0, t + 1).unwrap();
    assert_eq!(max_abs_diff(&prefix(&y), &prefix(&y_changed)), 0.0);
    let suffix = |y: &Tensor| y.narrow(1, t + 1, LEN - t - 1).unwrap();
    assert!(max_abs_diff(&suffix(&y), &suffix(&y_changed)) > 0.0);
}

#[test]
fn the_state_size_does_not_depend_on_the_sequence_length() {
    let cfg = Config::tiny();
    let (_, mixer) = fresh_mixer(&cfg);
    for len in [1, 5, 64] {
        let (_, state) = mixer.forward(&input(len), None).unwrap();
        assert_eq!(state.conv.dims(), [BATCH, cfg.d_inner(), cfg.d_conv - 1]);
        assert_eq!(state.ssm.dims(), [BATCH, cfg.d_inner(), cfg.d_state]);
    }
}

#[test]
fn a_log_d_and_the_dt_bias_are_initialised_per_the_spec() {
    let cfg = Config::tiny();
    let (varmap, _) = fresh_mixer(&cfg);

    let a_log = weight(&varmap, "A_log").to_vec2::<f32>().unwrap();
    assert_eq!(a_log.len(), cfg.d_inner());
    for row in &a_log {
        let expected: Vec<f32> = (1..=cfg.d_state).map(|j| (j as f32).ln()).collect();
        assert_eq!(row, &expected);
    }

    let d = weight(&varmap, "D").to_vec1::<f32>().unwrap();
    assert_eq!(d, vec![1.0; cfg.d_inner()]);

    let bias = weight(&varmap, "dt_proj.bias").to_vec1::<f32>().unwrap();
    assert_eq!(bias.len(), cfg.d_inner());
    for b in bias {
        let dt = f64::from(b).exp().ln_1p();
        assert!(
            dt >= cfg.dt_min * (1.0 - 1e-4) && dt <= cfg.dt_max * (1.0 + 1e-4),
            "softplus(dt bias) = {dt} is outside [dt_min, dt_max]"
        );
    }
}

#[test]
fn the_mixer_equals_a_plain_token_by_token_mamba_step() {
    let cfg = Config::tiny();
    let (varmap, mixer) = fresh_mixer(&cfg);
    let (di, n, r, k) = (cfg.d_inner(), cfg.d_state, cfg.dt_rank, cfg.d_conv);
    let w_in = weight(&varmap, "in_proj.weight");
    let conv_w = weight(&varmap, "conv1d.weight");
    let conv_b = weight(&varmap, "conv1d.bias");
    let w_x = weight(&varmap, "x_proj.weight");
    let w_dt = weight(&varmap, "dt_proj.weight");
    let b_dt = weight(&varmap, "dt_proj.bias");
    let a = weight(&varmap, "A_log").exp().unwrap().neg().unwrap();
    let d_skip = weight(&varmap, "D");
    let w_out = weight(&varmap, "out_proj.weight");

    let u = input(LEN);
    let (y, state) = mixer.forward(&u, None).unwrap();

    let mut window = Tensor::zeros((BATCH, di, k), DType::F32, &Device::Cpu).unwrap();
    let mut h = Tensor::zeros((BATCH, di, n), DType::F32, &Device::Cpu).unwrap();
    for t in 0..LEN {
        let xz = u.i((.., t)).unwrap().matmul(&w_in.t().unwrap()).unwrap();
        let (x, z) = (xz.narrow(1, 0, di).unwrap(), xz.narrow(1, di, di).unwrap());
        // the conv window holds the last d_conv inputs, oldest first
        window = Tensor::cat(
            &[window.narrow(2, 1, k - 1).unwrap(), x.unsqueeze(2).unwrap()],
            2,
        )
        .unwrap();
        let x = window
            .broadcast_mul(&conv_w)
            .unwrap()
            .sum(D::Minus1)
            .unwrap();
        let x = silu(&x.broadcast_add(&conv_b).unwrap()).unwrap();
        let dbc = x.matmul(&w_x.t().unwrap()).unwrap();
        let dt_low = dbc.narrow(1, 0, r).unwrap();
        let b = dbc.narrow(1, r, n).unwrap();
        let c = dbc.narrow(1, r + n, n).unwrap();
        let dt_pre = dt_low
            .matmul(&w_dt.t().unwrap())
            .unwrap()
            .broadcast_add(&b_dt)
            .unwrap();
        let dt = (dt_pre.exp().unwrap() + 1.0).unwrap().log().unwrap();
        let decay = dt
            .unsqueeze(2)
            .unwrap()
            .broadcast_mul(&a)
            .unwrap()
            .exp()
            .unwrap();
        let drive = (&dt * &x)
            .unwrap()
            .unsqueeze(2)
            .unwrap()
            .broadcast_mul(&b.unsqueeze(1).unwrap())
            .unwrap();
        h = ((decay * &h).unwrap() + drive).unwrap();
        let y_t = h
            .broadcast_mul(&c.unsqueeze(1).unwrap())
            .unwrap()
            .sum(2)
            .unwrap();
        let y_t = (y_t + x.broadcast_mul(&d_skip).unwrap()).unwrap();
        let out = (y_t * silu(&z).unwrap())
            .unwrap()
            .matmul(&w_out.t().unwrap())
            .unwrap();
        let diff = max_abs_diff(&out, &y.i((.., t)).unwrap());
        assert!(
            diff < 1e-4,
            "token {t}: mixer and plain step differ by {diff}"
        );
    }
    assert!(max_abs_diff(&h, &state.ssm) < 1e-4);
    assert!(max_abs_diff(&window.narrow(2, 1, k - 1).unwrap(), &state.conv) < 1e-4);
}

#[test]
fn the_cpu_inference_path_equals_the_differentiable_one() {
    let cfg = Config::tiny();
    let (varmap, trainable) = fresh_mixer(&cfg);
    // The same weights detached: no gradient can flow, so `forward` takes the fused CPU path.
    let detached = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
        .collect();
    let vb = VarBuilder::from_tensors(detached, DType::F32, &Device::Cpu);
    let inference = MambaMixer::new(&cfg, vb.pp("mixer")).unwrap();
    let u = input(LEN);
    // Two calls, so that the second starts from a non-zero conv and SSM state.
    let run = |mixer: &MambaMixer| {
        let (y1, s1) = mixer.forward(&u.narrow(1, 0, 7).unwrap(), None).unwrap();
        let (y2, s2) = mixer
            .forward(&u.narrow(1, 7, LEN - 7).unwrap(), Some(&s1))
            .unwrap();
        (Tensor::cat(&[y1, y2], 1).unwrap(), s2)
    };
    let (y, state) = run(&trainable);
    let (y_fused, state_fused) = run(&inference);
    assert!(max_abs_diff(&y, &y_fused) < 1e-4);
    assert!(max_abs_diff(&state.conv, &state_fused.conv) < 1e-4);
    assert!(max_abs_diff(&state.ssm, &state_fused.ssm) < 1e-4);
}
