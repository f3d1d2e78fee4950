//! MODEL.md section 3.2: how a summary pool admits notes.

use memmamba::pool::{admission_floor, admit, is_noted, Slot};
use memmamba::PoolPolicy::{Fifo, Priority};

// Scores are given as log-scores `ln s` (<= 0), by which the pool ranks notes.
fn slot(log_score: f32, position: u64) -> Slot {
    Slot {
        valid: true,
        log_score,
        position,
    }
}

#[test]
fn empty_slots_fill_first_in_order_under_both_policies() {
    for policy in [Priority, Fifo] {
        let mut slots = vec![Slot::EMPTY; 3];
        assert_eq!(admit(&mut slots, -0.10, 5, policy), Some(0));
        assert_eq!(admit(&mut slots, -0.90, 6, policy), Some(1));
        assert_eq!(slots[1], slot(-0.90, 6));
        assert!(!slots[2].valid);
    }
}

#[test]
fn priority_overwrites_the_lowest_score_only_if_the_new_note_scores_higher() {
    let mut slots = vec![slot(-0.30, 1), slot(-0.40, 2), slot(-0.20, 3)];
    assert_eq!(
        admit(&mut slots, -0.40, 9, Priority),
        None,
        "equal score: dropped"
    );
    assert_eq!(admit(&mut slots, -0.50, 9, Priority), None);
    assert_eq!(slots, vec![slot(-0.30, 1), slot(-0.40, 2), slot(-0.20, 3)]);
    assert_eq!(admit(&mut slots, -0.35, 9, Priority), Some(1));
    assert_eq!(slots[1], slot(-0.35, 9));
}

#[test]
fn priority_ties_break_towards_the_older_position() {
    let mut slots = vec![slot(-0.40, 8), slot(-0.40, 3), slot(-0.10, 1)];
    assert_eq!(admit(&mut slots, -0.30, 10, Priority), Some(1));
    assert_eq!(admit(&mut slots, -0.30, 11, Priority), Some(0));
}

#[test]
fn fifo_overwrites_the_oldest_whatever_the_scores() {
    let mut slots = vec![slot(-0.10, 4), slot(-0.05, 2), slot(-0.01, 7)];
    assert_eq!(admit(&mut slots, -0.49, 9, Fifo), Some(1));
    assert_eq!(admit(&mut slots, -0.49, 10, Fifo), Some(0));
    assert_eq!(slots, vec![slot(-0.49, 10), slot(-0.49, 9), slot(-0.01, 7)]);
}

#[test]
fn a_token_is_noted_only_strictly_above_tau1() {
    let ln_tau1 = 0.5f64.ln();
    assert!(is_noted(0.51f32.ln(), ln_tau1));
    assert!(!is_noted(0.5f32.ln(), ln_tau1));
    assert!(!is_noted(0.2f32.ln(), ln_tau1));
    assert!(is_noted(-1e-12, ln_tau1), "a score that rounds to 1.0");
}

#[test]
fn a_priority_pool_keeps_taking_notes_whose_scores_round_to_one() {
    // Logits 20..40: every sigmoid is 1.0 in f32, the log-scores -e^-x still differ.
    let log_scores: Vec<f32> = (20..40).map(|x| -(-f64::from(x)).exp() as f32).collect();
    assert!(log_scores.iter().all(|&l| l.exp() == 1.0 && l < 0.0));
    let mut slots = vec![Slot::EMPTY; 4];
    for (t, &l) in log_scores.iter().enumerate() {
        assert!(
            admit(&mut slots, l, t as u64, Priority).is_some(),
            "note {t}"
        );
    }
    let kept: Vec<u64> = slots.iter().map(|s| s.position).collect();
    assert_eq!(kept, vec![16, 17, 18, 19], "the four most confident");
}

#[test]
fn the_admission_floor_drops_exactly_what_admit_would_drop() {
    // A pseudo-random run of notes, many scores repeated, through a pool of 8 slots.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let scores: Vec<f32> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            -0.50 + (x % 64) as f32 / 128.0
        })
        .collect();
    for policy in [Priority, Fifo] {
        let (mut every, mut skipping) = (vec![Slot::EMPTY; 8], vec![Slot::EMPTY; 8]);
        let mut dropped = 0;
        for (t, &score) in scores.iter().enumerate() {
            let admitted = admit(&mut every, score, t as u64, policy);
            match admission_floor(&skipping, policy) {
                Some(floor) if score <= floor => {
                    assert_eq!(
                        admitted, None,
                        "{policy:?} note {t}: the floor dropped a note admit took"
                    );
                    dropped += 1;
                }
                _ => assert_eq!(admit(&mut skipping, score, t as u64, policy), admitted),
            }
            assert_eq!(skipping, every, "{policy:?} after note {t}");
        }
        assert_eq!(
            dropped > 0,
            policy == Priority,
            "{policy:?}: {dropped} dropped by the floor"
        );
    }
    assert_eq!(
        admission_floor(&[slot(-0.30, 1), Slot::EMPTY], Priority),
        None
    );
    assert_eq!(
        admission_floor(&[slot(-0.30, 1), slot(-0.40, 2)], Priority),
        Some(-0.40)
    );
    assert_eq!(
        admission_floor(&[slot(-0.30, 1), slot(-0.40, 2)], Fifo),
        None
    );
}

#[test]
fn the_training_path_computes_log_scores_exactly_in_both_tails() {
    use candle_core::{Device, Tensor, Var};
    let logits: Vec<f32> = vec![
        -90.0, -20.0, -1.0, -1e-4, 1e-4, 2.0, 7.0, 16.0, 17.0, 30.0, 80.0,
    ];
    let x = Var::from_tensor(&Tensor::new(logits.as_slice(), &Device::Cpu).unwrap()).unwrap();
    let y = memmamba::notes::ln_sigmoid(x.as_tensor()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let got = y.to_vec1::<f32>().unwrap();
    let slopes = grads.get(&x).unwrap().to_vec1::<f32>().unwrap();
    for ((&x, &y), &slope) in logits.iter().zip(&got).zip(&slopes) {
        let x = f64::from(x);
        let want = x.min(0.0) - (-x.abs()).exp().ln_1p();
        let err = (f64::from(y) - want).abs() / want.abs();
        assert!(err < 1e-5, "ln sigmoid({x}) = {y}, want {want}");
        // d/dx ln sigmoid(x) = sigmoid(-x)
        let want_slope = 1.0 / (1.0 + x.exp());
        let err = (f64::from(slope) - want_slope).abs() / want_slope.max(1e-30);
        assert!(err < 1e-4, "slope at {x}: {slope}, want {want_slope}");
    }
}
