//! Training samples: plain book windows and the synthetic long-range tasks, in the app's
//! question format, with answer tokens weighted.

mod common;

use common::{demo_store, small_tokenizer};
use memmamba::prompt::question_prompt;
use memmamba::Rng;
use memmamba_train::tasks::{draw_sample, multikey, passkey, Sample, TaskMix};

const LEN: usize = 1024;

fn only(passkey: f64, multikey: f64, recall: f64) -> TaskMix {
    TaskMix {
        passkey,
        multikey,
        recall,
        answer_weight: 4.0,
    }
}

fn draw(mix: TaskMix, seed: u64) -> (Sample, String) {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let sample = draw_sample(&store, tokenizer, &mix, LEN, &mut Rng::for_step(seed, 0)).unwrap();
    let text = tokenizer.decode(&sample.tokens).unwrap();
    (sample, text)
}

/// The answer text: what follows the last "Answer:" (the targets weighted up).
fn answer(text: &str) -> &str {
    &text[text.rfind("\nAnswer:").expect("a question") + "\nAnswer:".len()..]
}

fn assert_answer_weighted(sample: &Sample) {
    assert_eq!(sample.tokens.len(), LEN + 1);
    assert_eq!(sample.weights.len(), LEN);
    let weighted = sample.weights.iter().filter(|&&w| w == 4.0).count();
    assert!(
        weighted >= 2,
        "the answer's targets carry the answer weight"
    );
    assert!(
        sample.weights[LEN - weighted..].iter().all(|&w| w == 4.0),
        "answer targets come last"
    );
    assert!(sample.weights[..LEN - weighted].iter().all(|&w| w == 1.0));
}

#[test]
fn plain_samples_are_windows_of_the_books_with_unit_weights() {
    let (sample, text) = draw(only(0.0, 0.0, 0.0), 7);
    assert_eq!(sample.tokens.len(), LEN + 1);
    assert!(sample.weights.iter().all(|&w| w == 1.0));
    assert!(!text.contains("Question:"));
}

#[test]
fn a_passkey_sample_hides_the_key_and_asks_for_it_at_the_end() {
    for seed in 0..5 {
        let (sample, text) = draw(only(1.0, 0.0, 0.0), seed);
        assert_answer_weighted(&sample);
        let key = answer(&text).trim();
        assert_eq!(key.len(), 5, "{key:?}");
        assert!(key.chars().all(|c| c.is_ascii_digit()));
        assert!(text.contains(&format!(
            "The pass key is {key}. Remember it. {key} is the pass key."
        )));
        assert!(text.contains(&question_prompt("What is the pass key?")));
        assert!(text.ends_with('\n'));
    }
}

#[test]
fn a_multikey_sample_asks_for_one_of_several_facts_it_states() {
    for seed in 0..5 {
        let (sample, text) = draw(only(0.0, 1.0, 0.0), seed);
        assert_answer_weighted(&sample);
        let facts = text.matches("The secret number of ").count(); // the question says "the"
        assert!((2..=8).contains(&facts), "{facts} facts");
        let asked = text.rsplit("What is the secret number of ").next().unwrap();
        let name = &asked[..asked.find('?').unwrap()];
        let value = answer(&text).trim();
        assert!(
            text.contains(&format!("The secret number of {name} is {value}.")),
            "{name} {value}"
        );
    }
}

#[test]
fn a_fact_set_names_the_fact_its_question_asks_for() {
    let mut rng = Rng::for_step(7, 0);
    for count in [2, 5, 8] {
        let facts = multikey(count, &mut rng);
        let name = facts.question["What is the secret number of ".len()..].trim_end_matches('?');
        assert_eq!(
            facts.facts[facts.asked],
            format!(" The secret number of {name} is {}. ", facts.answer)
        );
    }
    assert_eq!(passkey(&mut rng).asked, 0);
}

#[test]
fn a_recall_sample_asks_to_continue_a_quote_from_earlier_in_the_same_sample() {
    for seed in 0..5 {
        let (sample, text) = draw(only(0.0, 0.0, 1.0), seed);
        assert_answer_weighted(&sample);
        let cue_start =
            text.rfind("Continue the quote: \"").unwrap() + "Continue the quote: \"".len();
        let cue = &text[cue_start..text[cue_start..].find("\"\nAnswer:").unwrap() + cue_start];
        let continuation = answer(&text).trim_end_matches('\n');
        let quoted = format!("{}{}", cue.trim(), continuation);
        let body = &text[..cue_start];
        assert!(
            body.split_whitespace()
                .collect::<String>()
                .contains(&quoted.split_whitespace().collect::<String>()),
            "the quote {quoted:?} is in the text"
        );
    }
}

#[test]
fn the_same_seed_and_step_draw_the_same_sample() {
    let tokenizer = small_tokenizer();
    let store = demo_store(tokenizer);
    let mix = TaskMix::default();
    let draw =
        |step| draw_sample(&store, tokenizer, &mix, 256, &mut Rng::for_step(3, step)).unwrap();
    assert_eq!(draw(10), draw(10));
    assert_ne!(draw(10), draw(11));
}
