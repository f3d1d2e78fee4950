//! MODEL.md section 3.2: how a summary pool admits notes.

use memmamba::pool::{admission_floor, admit, is_noted, Slot};
use memmamba::PoolPolicy::{Fifo, Priority};

fn slot(score: f32, position: u64) -> Slot {
    Slot {
        valid: true,
        score,
        position,
    }
}

#[test]
fn empty_slots_fill_first_in_order_under_both_policies() {
    for policy in [Priority, Fifo] {
        let mut slots = vec![Slot::EMPTY; 3];
        assert_eq!(admit(&mut slots, 0.9, 5, policy), Some(0));
        assert_eq!(admit(&mut slots, 0.1, 6, policy), Some(1));
        assert_eq!(slots[1], slot(0.1, 6));
        assert!(!slots[2].valid);
    }
}

#[test]
fn priority_overwrites_the_lowest_score_only_if_the_new_note_scores_higher() {
    let mut slots = vec![slot(0.7, 1), slot(0.6, 2), slot(0.8, 3)];
    assert_eq!(
        admit(&mut slots, 0.6, 9, Priority),
        None,
        "equal score: dropped"
    );
    assert_eq!(admit(&mut slots, 0.5, 9, Priority), None);
    assert_eq!(slots, vec![slot(0.7, 1), slot(0.6, 2), slot(0.8, 3)]);
    assert_eq!(admit(&mut slots, 0.65, 9, Priority), Some(1));
    assert_eq!(slots[1], slot(0.65, 9));
}

#[test]
fn priority_ties_break_towards_the_older_position() {
    let mut slots = vec![slot(0.6, 8), slot(0.6, 3), slot(0.9, 1)];
    assert_eq!(admit(&mut slots, 0.7, 10, Priority), Some(1));
    assert_eq!(admit(&mut slots, 0.7, 11, Priority), Some(0));
}

#[test]
fn fifo_overwrites_the_oldest_whatever_the_scores() {
    let mut slots = vec![slot(0.9, 4), slot(0.95, 2), slot(0.99, 7)];
    assert_eq!(admit(&mut slots, 0.51, 9, Fifo), Some(1));
    assert_eq!(admit(&mut slots, 0.51, 10, Fifo), Some(0));
    assert_eq!(slots, vec![slot(0.51, 10), slot(0.51, 9), slot(0.99, 7)]);
}

#[test]
fn a_token_is_noted_only_strictly_above_tau1() {
    assert!(is_noted(0.51, 0.5));
    assert!(!is_noted(0.5, 0.5));
    assert!(!is_noted(0.2, 0.5));
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
            0.5 + (x % 64) as f32 / 128.0
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
        admission_floor(&[slot(0.7, 1), Slot::EMPTY], Priority),
        None
    );
    assert_eq!(
        admission_floor(&[slot(0.7, 1), slot(0.6, 2)], Priority),
        Some(0.6)
    );
    assert_eq!(admission_floor(&[slot(0.7, 1), slot(0.6, 2)], Fifo), None);
}
