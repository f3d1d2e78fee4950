//! The optimiser and its schedule.

use candle_core::{Device, Tensor, Var};
use memmamba_train::optim::{decays, learning_rate, AdamW, AdamWConfig};

#[test]
fn the_schedule_warms_up_linearly_then_decays_by_a_cosine_to_the_floor() {
    let lr = |step| learning_rate(step, 10, 110, 1e-3, 1e-4);
    assert!((lr(0) - 1e-4).abs() < 1e-12);
    assert!((lr(9) - 1e-3).abs() < 1e-12);
    assert!((lr(10) - 1e-3).abs() < 1e-12);
    assert!((lr(60) - 5.5e-4).abs() < 1e-9, "half way down: {}", lr(60));
    assert!((lr(110) - 1e-4).abs() < 1e-12);
    assert!(
        (lr(500) - 1e-4).abs() < 1e-12,
        "stays at the floor past the end"
    );
    for step in 10..110 {
        assert!(lr(step + 1) <= lr(step));
    }
}

#[test]
fn matrices_decay_but_biases_norms_a_log_and_d_do_not() {
    assert!(decays("layers.0.mixer.in_proj.weight"));
    assert!(decays("embedding.weight"));
    assert!(!decays("layers.0.mixer.dt_proj.bias"));
    assert!(!decays("layers.0.mixer.A_log"));
    assert!(!decays("layers.0.mixer.D"));
    assert!(!decays("layers.0.norm.weight"));
    assert!(!decays("norm_f.weight"));
}

#[test]
fn adamw_minimises_a_quadratic_and_its_state_round_trips() {
    let dev = Device::Cpu;
    let target = Tensor::new(&[3f32, -2.0, 0.5], &dev).unwrap();
    let make = || {
        let w =
            Var::from_tensor(&Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap()).unwrap();
        let vars = [("w.weight".to_string(), w.clone())].into_iter().collect();
        let config = AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        };
        (w, AdamW::new(vars, config).unwrap())
    };
    let step = |w: &Var, opt: &mut AdamW| {
        let loss = (w.as_tensor() - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&opt.gradients(&grads), 0.05, 1.0).unwrap();
        loss.to_scalar::<f32>().unwrap()
    };
    let (w, mut opt) = make();
    let first = step(&w, &mut opt);
    for _ in 0..300 {
        step(&w, &mut opt);
    }
    let last = step(&w, &mut opt);
    assert!(last < first * 1e-3, "{first} -> {last}");

    // Save mid-run, restore into a fresh optimiser: the next updates are identical.
    let dir = std::env::temp_dir().join(format!("memmamba-adamw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("opt.safetensors");
    opt.save(&path).unwrap();
    let (w2, mut opt2) = make();
    w2.set(w.as_tensor()).unwrap();
    opt2.load(&path).unwrap();
    assert_eq!(opt2.steps_taken(), opt.steps_taken());
    step(&w, &mut opt);
    step(&w2, &mut opt2);
    assert_eq!(
        w.as_tensor().to_vec1::<f32>().unwrap(),
        w2.as_tensor().to_vec1::<f32>().unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gradients_reach_the_optimizer_without_the_graph_that_computed_them() {
    // w2's gradient is computed from h, an activation that depends on w1: candle leaves such a
    // variable's gradient attached to the step's graph, and moments built from it kept every
    // step's activations alive.
    let dev = Device::Cpu;
    let w1 = Var::from_tensor(&Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap()).unwrap();
    let w2 = Var::from_tensor(&Tensor::new(&[[0.5f32], [-1.0]], &dev).unwrap()).unwrap();
    let input = Tensor::new(&[[1f32, -1.0]], &dev).unwrap();
    let h = input.matmul(w1.as_tensor()).unwrap().tanh().unwrap();
    let loss = h.matmul(w2.as_tensor()).unwrap().sum_all().unwrap();
    let store = loss.backward().unwrap();
    assert!(
        store.get(w2.as_tensor()).unwrap().track_op(),
        "candle's own gradient of w2 is attached to the graph"
    );
    let vars = [("w1".to_string(), w1), ("w2".to_string(), w2)]
        .into_iter()
        .collect();
    let opt = AdamW::new(vars, AdamWConfig::default()).unwrap();
    let grads = opt.gradients(&store);
    assert_eq!(grads.tensors().count(), 2);
    for g in grads.tensors() {
        assert!(
            !g.track_op(),
            "a gradient the optimizer keeps must hold no graph"
        );
    }
}
