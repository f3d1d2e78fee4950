//! How a question's candidate passages are ranked from their evidence (`memreader::ask::fuse`):
//! BM25's order stands unless the other scores have something to say about the passages: the
//! question words a passage holds, the memory's pointers, and a model that is confident about
//! one passage, each where the weights give it a say (the shipped weights give it to the scores
//! that showed a signal where they were fitted). First on the scores alone, then through
//! `ask::search` with a tiny random model.

mod common;

use common::doc_id;
use memreader::ask::{self, first_stage, fuse, AskOptions, Evidence, Fusion, FUSION};
use memreader::library::Library;
use memreader::memory::{self, ReadOptions};
use memreader::model::Model;

/// Candidate indices, best first (of equal scores the first).
fn order(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Candidates with these BM25 scores, the first `pmis.len()` of them reranked with these PMIs
/// (nats summed over the question's tokens).
fn candidates(bm25: &[f32], pmis: &[f32]) -> Vec<Evidence> {
    bm25.iter()
        .enumerate()
        .map(|(i, &s)| Evidence {
            bm25: Some(s),
            model: pmis.get(i).copied(),
            ..Evidence::default()
        })
        .collect()
}

const BM25: [f32; 7] = [14.2, 13.9, 11.0, 10.4, 9.8, 6.1, 2.0];

/// Weights that give the model a say, as a fit would for a model whose PMI carries signal.
const TRUSTING: Fusion = Fusion {
    bm25: 1.0,
    memory: 100.0,
    held: 2.0,
    model: 0.2,
};

#[test]
fn with_the_shipped_weights_more_of_any_score_never_ranks_a_passage_lower() {
    let base = candidates(&[9.0, 9.0, 7.0], &[1.5, 1.5, 1.5]);
    let bumps: [fn(&mut Evidence); 4] = [
        |e| e.bm25 = e.bm25.map(|s| s + 1.0),
        |e| e.memory = Some(0.01),
        |e| e.held = Some(1.0),
        |e| e.model = e.model.map(|m| m + 5.0),
    ];
    for (i, bump) in bumps.iter().enumerate() {
        let mut evidence = base.clone();
        bump(&mut evidence[1]);
        let fused = fuse(&evidence, &FUSION);
        assert!(fused[1] >= fused[0], "score {i}: {fused:?}");
    }
    // and more BM25 ranks it strictly higher
    let mut evidence = base.clone();
    bumps[0](&mut evidence[1]);
    assert_eq!(order(&fuse(&evidence, &FUSION)), [1, 0, 2]);
}

#[test]
fn a_model_that_gives_every_passage_the_same_pmi_keeps_bm25s_order() {
    let confident = Fusion {
        model: 100.0,
        ..FUSION
    };
    for weights in [FUSION, TRUSTING, confident] {
        for level in [-31.7, 0.0, 0.3, 12.5] {
            let evidence = candidates(&BM25, &[level; 5]);
            let fused = fuse(&evidence, &weights);
            assert_eq!(
                order(&fused),
                (0..BM25.len()).collect::<Vec<_>>(),
                "{fused:?}"
            );
            for (e, f) in evidence.iter().zip(&fused) {
                assert!((first_stage(e, &weights) - f).abs() < 1e-3, "{fused:?}");
            }
        }
    }
}

#[test]
fn a_passage_the_model_finds_far_likelier_comes_first() {
    // BM25 put it fourth, 3.8 below the first; after it the question is e^40 times likelier
    // than after the other reranked passages
    let evidence = candidates(&BM25, &[0.0, 0.0, 0.0, 40.0, 0.0]);
    let fused = fuse(&evidence, &TRUSTING);
    assert_eq!(order(&fused), [3, 0, 1, 2, 4, 5, 6], "{fused:?}");
    // the shipped weights give today's model no say
    let fused = fuse(
        &evidence,
        &Fusion {
            model: 0.0,
            ..TRUSTING
        },
    );
    assert_eq!(order(&fused), [0, 1, 2, 3, 4, 5, 6], "{fused:?}");
}

#[test]
fn a_small_disagreement_of_the_model_does_not_overturn_a_clear_bm25_lead() {
    // the model prefers the second passage by a nat over the others; BM25's first leads by
    // 3.3 points over the third and its lead over the second is small
    let evidence = candidates(&[14.2, 10.9, 10.4], &[0.0, 1.0, 0.0]);
    let fused = fuse(&evidence, &TRUSTING);
    assert_eq!(order(&fused)[0], 0, "{fused:?}");
}

#[test]
fn passages_the_model_did_not_rerank_neither_gain_nor_lose() {
    let evidence = candidates(&BM25, &[6.0, -9.0, 2.5]);
    let fused = fuse(&evidence, &TRUSTING);
    for i in 3..BM25.len() {
        assert_eq!(fused[i], first_stage(&evidence[i], &TRUSTING), "{fused:?}");
    }
    // the reranked ones move around their mean: as many points up as down
    let moved: f32 = (0..3)
        .map(|i| fused[i] - first_stage(&evidence[i], &TRUSTING))
        .sum();
    assert!(moved.abs() < 1e-4, "{fused:?}");
}

#[test]
fn the_memory_pointing_at_a_passage_lifts_it_by_its_weight() {
    // of two passages BM25 scores alike, the one the memory points at comes first
    let mut evidence = candidates(&[9.0, 9.0, 4.0], &[]);
    evidence[1].memory = Some(0.01);
    assert_eq!(order(&fuse(&evidence, &TRUSTING)), [1, 0, 2]);
    // a passage the memory alone points at, weakly, ranks below those BM25 found
    evidence.push(Evidence {
        memory: Some(0.02),
        ..Evidence::default()
    });
    let fused = fuse(&evidence, &TRUSTING);
    assert_eq!(order(&fused), [1, 0, 2, 3], "{fused:?}");
    assert_eq!(fused[3], TRUSTING.memory * 0.02);
}

#[test]
fn a_passage_holding_more_of_the_question_words_ranks_above_one_bm25_prefers_a_little() {
    // the second passage holds all three question words, the first two of them (one often)
    let mut evidence = candidates(&[10.5, 9.5], &[]);
    evidence[0].held = Some(2.0);
    evidence[1].held = Some(3.0);
    assert_eq!(order(&fuse(&evidence, &TRUSTING)), [1, 0]);
    // but not one that BM25 prefers by far
    evidence[0].bm25 = Some(14.0);
    assert_eq!(order(&fuse(&evidence, &TRUSTING)), [0, 1]);
}

#[test]
fn the_words_held_are_the_questions_distinct_content_words_that_the_passage_has() {
    let passages = [
        "The keeper lit the lamps at dusk, and the ships came home.",
        "No lamp burned in the tower that night.",
        "The harbour was dark.",
    ];
    // a word held by one of three passages weighs ln(1 + 4/2), by two ln(1 + 4/3)
    let (one, two) = ((3f32).ln(), (7f32 / 3.0).ln());
    let close = |got: Vec<f32>, want: [f32; 3]| {
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
            "{got:?} against {want:?}"
        )
    };
    // "where", "was", "the" are function words; "lamp" and "lamps" are one word
    close(
        ask::words_held("Where was the lamp lit?", &passages),
        [two + one, two, 0.0],
    );
    close(
        ask::words_held("Lamp, lamps, LAMP: ship?", &passages),
        [two + one, two, 0.0],
    );
    close(
        ask::words_held("Where was the lantern?", &passages),
        [0.0; 3],
    );
}

#[test]
fn a_rare_word_held_counts_for_more_than_a_common_one() {
    let passages = [
        "The lamp was lit.",
        "The lamp was out.",
        "A lamp and a lantern.",
    ];
    let held = ask::words_held("lamp lantern", &passages);
    // all three hold "lamp"; only the third holds "lantern"
    assert!(
        held[2] > held[0] && held[0] == held[1] && held[0] > 0.0,
        "{held:?}"
    );
}

/// The demo books read a little by a tiny random model: the library and the model.
fn read_library(tmp: &std::path::Path) -> (Library, Model) {
    let library = common::library(tmp);
    let model = common::load(&common::tiny_model(&tmp.join("model")));
    let grimm = doc_id(&library, "grimm");
    let options = ReadOptions {
        max_tokens: Some(2048),
        ..ReadOptions::default()
    };
    memory::read(&library, &model, &grimm, &options, &mut |_| {}).unwrap();
    (library, model)
}

const QUESTIONS: [&str; 3] = [
    "What did Little Red-cap take to her grandmother?",
    "Where did the wolf lie down in the bed?",
    "What is the pass key?",
];

/// Weights that give BM25 alone a say.
const BM25_WEIGHT_ONLY: Fusion = Fusion {
    bm25: 1.0,
    memory: 0.0,
    held: 0.0,
    model: 0.0,
};

/// BM25's candidates in BM25's order: no other score, no memory pointers, no reranking.
fn bm25_alone() -> AskOptions {
    AskOptions {
        memory: 0,
        rerank: 0,
        fusion: BM25_WEIGHT_ONLY,
        ..AskOptions::default()
    }
}

/// Asks each of [`QUESTIONS`] with `options` and with `reference` (with `model`, or without one
/// where None) and asserts the same passages in the same order; returns `options`' citations,
/// question by question.
fn assert_ranks_as(
    library: &Library,
    model: Option<&Model>,
    options: &AskOptions,
    reference: &AskOptions,
) -> Vec<Vec<ask::Citation>> {
    let passages = |c: &[ask::Citation]| c.iter().map(|c| c.passage.clone()).collect::<Vec<_>>();
    QUESTIONS
        .iter()
        .map(|question| {
            let (want, _) = ask::search(library, model, question, reference, 10).unwrap();
            let (cites, _) = ask::search(library, model, question, options, 10).unwrap();
            assert_eq!(passages(&cites), passages(&want), "{question}");
            cites
        })
        .collect()
}

#[test]
fn with_no_weight_on_the_models_scores_the_full_pipeline_ranks_as_bm25_and_reranks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (library, model) = read_library(tmp.path());
    let full = AskOptions {
        fusion: BM25_WEIGHT_ONLY,
        ..AskOptions::default()
    };
    for fused in assert_ranks_as(&library, Some(&model), &full, &bm25_alone()) {
        // the words held were counted for every candidate without moving anything; the
        // reranking's forward passes, whose PMI has no weight, were not run
        assert!(fused.iter().all(|c| c.held.is_some()), "{fused:#?}");
        assert!(fused.iter().all(|c| c.model.is_none()), "{fused:#?}");
    }
}

#[test]
fn the_full_pipeline_ranks_by_the_fusion_of_each_citations_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (library, model) = read_library(tmp.path());
    let options = AskOptions {
        fusion: TRUSTING,
        ..AskOptions::default()
    };
    for question in QUESTIONS {
        let (cites, _) = ask::search(&library, Some(&model), question, &options, 100).unwrap();
        let evidence: Vec<Evidence> = cites
            .iter()
            .map(|c| Evidence {
                bm25: c.bm25,
                memory: c.memory,
                held: c.held,
                model: c.model,
            })
            .collect();
        let fused = fuse(&evidence, &TRUSTING);
        for (c, f) in cites.iter().zip(&fused) {
            assert!((c.score - f).abs() < 1e-3, "{question}: {} != {f}", c.score);
        }
        assert!(
            fused.windows(2).all(|f| f[0] >= f[1]),
            "{question}: {fused:?}"
        );
    }
}

#[test]
fn the_reranking_reads_the_log_probabilities_that_streaming_the_tokens_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::load(&common::tiny_model(tmp.path()));
    let ids = model
        .encode("The wolf lay down in the bed.\n\nQuestion: Where did the wolf lie?")
        .unwrap();
    let from = 5;
    let at_once = model.token_logprobs(&ids, from).unwrap();
    let mut state = model.new_state().unwrap();
    let mut logprobs = model.read(&mut state, &ids[..from]).unwrap();
    assert_eq!(at_once.len(), ids.len() - from);
    for (t, lp) in (from..ids.len()).zip(&at_once) {
        let streamed = logprobs[ids[t] as usize];
        assert!(
            (lp - streamed).abs() < 1e-3,
            "token {t}: {lp} != {streamed}"
        );
        logprobs = model.read(&mut state, &ids[t..=t]).unwrap();
    }
}

#[test]
fn with_all_the_weight_on_the_model_the_reranked_passages_follow_its_pmi() {
    let tmp = tempfile::tempdir().unwrap();
    let (library, model) = read_library(tmp.path());
    let options = AskOptions {
        rerank: 4,
        fusion: Fusion {
            model: 1e6,
            ..FUSION
        },
        ..AskOptions::default()
    };
    for question in QUESTIONS {
        let (cites, _) = ask::search(&library, Some(&model), question, &options, 100).unwrap();
        // four were reranked, and they come in the order of their PMI, the likeliest first
        let pmis: Vec<f32> = cites.iter().filter_map(|c| c.model).collect();
        assert_eq!(pmis.len(), 4, "{cites:#?}");
        assert!(pmis.windows(2).all(|p| p[0] >= p[1]), "{pmis:?}");
        assert_eq!(cites[0].model, Some(pmis[0]), "{cites:#?}");
        // those above their mean come before every passage not reranked, the others after
        let mean = pmis.iter().sum::<f32>() / 4.0;
        let last_above = cites
            .iter()
            .rposition(|c| c.model.is_some_and(|m| m > mean));
        let first_unranked = cites.iter().position(|c| c.model.is_none());
        assert!(last_above < first_unranked, "{cites:#?}");
    }
}

#[test]
fn without_the_model_the_shipped_weights_were_fitted_for_bm25_and_the_words_held_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let (library, model) = read_library(tmp.path());
    // the tiny random model is not the one FUSION was fitted for: its scores get no weight
    assert!(!model.weights_blake3().starts_with(ask::FUSION_MODEL));
    let lexical = Fusion {
        memory: 0.0,
        model: 0.0,
        ..FUSION
    };
    assert_eq!(ask::fusion_for(Some(&model), &FUSION), lexical);
    assert_eq!(ask::fusion_for(None, &FUSION), lexical);
    // weights chosen by the caller stand as they are
    assert_eq!(ask::fusion_for(Some(&model), &TRUSTING), TRUSTING);
    let lexical = AskOptions {
        fusion: lexical,
        ..AskOptions::default()
    };
    assert_ranks_as(&library, Some(&model), &AskOptions::default(), &lexical);
    // without a model too, where every candidate has its words held
    for cites in assert_ranks_as(&library, None, &AskOptions::default(), &lexical) {
        assert!(cites.iter().all(|c| c.held.is_some()), "{cites:#?}");
    }
}
