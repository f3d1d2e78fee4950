//! Asking questions of the bundled books, through the library API and the CLI, with a tiny
//! random model (answers then come from BM25 and extraction; the model's parts run but cannot
//! overrule them, as designed).

mod common;

use std::sync::Arc;

use common::{cli, doc_id, fails, ok, KNOWN};
use memreader::ask::{self, Answer, AnswerKind, AskEvent, AskOptions};
use memreader::memory::{self, ReadOptions};
use memreader::text::slice_chars;

/// Checks that each citation's quote is the document text at its char range, inside its
/// passage, and that the first one holds `expected` (in the chapter titled `chapter`).
fn check(
    library: &memreader::library::Library,
    answer: &Answer,
    expected: &str,
    chapter: Option<&str>,
) {
    assert!(!answer.citations.is_empty(), "{answer:#?}");
    for c in &answer.citations {
        let text = library.text(&c.doc_id).unwrap().text;
        assert_eq!(slice_chars(&text, &c.range), c.quote, "{c:#?}");
        assert!(
            c.passage.start <= c.range.start && c.range.end <= c.passage.end,
            "{c:#?}"
        );
        assert!(!c.title.is_empty());
    }
    let top = &answer.citations[0];
    assert!(
        top.quote.contains(expected),
        "{:?}: the first citation should hold {expected:?}: {answer:#?}",
        answer.question
    );
    assert!(answer.text.contains(expected), "{answer:#?}");
    if let Some(chapter) = chapter {
        assert_eq!(top.chapter_title.as_deref(), Some(chapter), "{top:#?}");
    }
    // the answer's source comes first, the other citations best first
    for pair in answer.citations[1..].windows(2) {
        assert!(pair[0].score >= pair[1].score, "{answer:#?}");
    }
}

#[test]
fn questions_with_known_answers_cite_the_right_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let model = common::load(&common::tiny_model(&tmp.path().join("model")));
    for id in [doc_id(&library, "grimm"), doc_id(&library, "wilde")] {
        let options = ReadOptions {
            max_tokens: Some(4096),
            ..ReadOptions::default()
        };
        memory::read(&library, &model, &id, &options, &mut |_| {}).unwrap();
    }
    for (question, expected, chapter) in KNOWN {
        let answer = ask::ask(&library, Some(&model), question, &AskOptions::default()).unwrap();
        check(&library, &answer, expected, chapter);
        // every cited passage has its words held; the model does not rerank (the shipped
        // weights, fitted for another model, give its PMI no weight)
        assert!(
            answer.citations.iter().all(|c| c.held.is_some()),
            "{answer:#?}"
        );
        assert!(answer.citations.iter().all(|c| c.model.is_none()));
        // a random model's generation is never confident, so the answer is extracted
        assert_eq!(answer.kind, AnswerKind::Extracted, "{answer:#?}");
        assert!(answer.generated.is_some() && answer.confidence.is_some());
    }
}

#[test]
fn without_a_model_answers_are_extracted_from_bm25_passages() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    for (question, expected, chapter) in KNOWN {
        let answer = ask::ask(&library, None, question, &AskOptions::default()).unwrap();
        check(&library, &answer, expected, chapter);
        assert_eq!(answer.kind, AnswerKind::Extracted);
        assert!(
            answer.notices.iter().any(|n| n.contains("no model")),
            "{answer:#?}"
        );
        assert!(answer
            .citations
            .iter()
            .all(|c| c.model.is_none() && c.memory.is_none()));
    }
    // a question that nothing matches
    let answer = ask::ask(&library, None, "xylophone zeppelin", &AskOptions::default()).unwrap();
    assert_eq!(answer.kind, AnswerKind::None);
    assert!(answer.citations.is_empty());
}

/// Asks `question` with `ask_with`: the answer and the events it streamed.
fn ask_streaming(
    library: &memreader::library::Library,
    model: Option<&memreader::model::Model>,
    question: &str,
) -> (Answer, Vec<AskEvent>) {
    let mut events = Vec::new();
    let answer = ask::ask_with(library, model, question, &AskOptions::default(), &mut |e| {
        events.push(e)
    })
    .unwrap();
    (answer, events)
}

/// The `Delta`s before the first `Replace`, joined.
fn streamed_before_replace(events: &[AskEvent]) -> String {
    events
        .iter()
        .map_while(|e| match e {
            AskEvent::Delta(piece) => Some(piece.as_str()),
            AskEvent::Replace(_) => None,
        })
        .collect()
}

#[test]
fn the_generated_answer_streams_and_an_extracted_one_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let model = common::load(&common::tiny_model(&tmp.path().join("model")));
    let mut streamed_any = false;
    for (question, expected, _) in &KNOWN[..3] {
        let (answer, events) = ask_streaming(&library, Some(&model), question);
        // the pieces streamed as the model generated are its generated text, in order
        let streamed = streamed_before_replace(&events);
        assert_eq!(Some(&streamed), answer.generated.as_ref(), "{events:?}");
        streamed_any |= !streamed.is_empty();
        // a random model is never confident: the extracted answer replaces what was streamed,
        // once, last
        assert_eq!(answer.kind, AnswerKind::Extracted, "{answer:#?}");
        assert!(answer.text.contains(expected), "{answer:#?}");
        assert_eq!(
            events.last(),
            Some(&AskEvent::Replace(answer.text.clone())),
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, AskEvent::Replace(_)))
                .count(),
            1,
            "{events:?}"
        );
        // streaming changes nothing in the answer
        let plain = ask::ask(&library, Some(&model), question, &AskOptions::default()).unwrap();
        assert_eq!(plain, answer);
    }
    assert!(streamed_any, "the model generated nothing to stream");
}

#[test]
fn without_generation_the_answer_comes_whole_in_one_event() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let (answer, events) = ask_streaming(&library, None, "What is the pass key?");
    assert!(answer.text.contains("68491"), "{answer:#?}");
    assert_eq!(events, [AskEvent::Replace(answer.text.clone())]);
    let (answer, events) = ask_streaming(&library, None, "xylophone zeppelin");
    assert_eq!(answer.kind, AnswerKind::None);
    assert_eq!(events, [AskEvent::Replace(answer.text)]);
}

#[test]
fn asking_one_document_cites_only_it() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let wilde = doc_id(&library, "wilde");
    let options = AskOptions {
        docs: vec![wilde[..8].to_owned()],
        citations: 5,
        ..AskOptions::default()
    };
    let answer = ask::ask(&library, None, "What did the wolf say?", &options).unwrap();
    assert!(
        answer.citations.iter().all(|c| c.doc_id == wilde),
        "{answer:#?}"
    );
}

#[test]
fn concurrent_asks_give_the_answers_of_sequential_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let library = Arc::new(common::library(tmp.path()));
    let model = Arc::new(common::load(&common::tiny_model(&tmp.path().join("model"))));
    let grimm = doc_id(&library, "grimm");
    let options = ReadOptions {
        max_tokens: Some(2048),
        ..ReadOptions::default()
    };
    memory::read(&library, &model, &grimm, &options, &mut |_| {}).unwrap();
    let options = AskOptions {
        rerank: 3,
        ..AskOptions::default()
    };
    let sequential: Vec<Answer> = KNOWN
        .iter()
        .map(|(q, _, _)| ask::ask(&library, Some(&model), q, &options).unwrap())
        .collect();
    let threads: Vec<_> = (0..2 * KNOWN.len())
        .map(|i| {
            let (library, model, options) = (library.clone(), model.clone(), options.clone());
            std::thread::spawn(move || {
                let (q, _, _) = KNOWN[i % KNOWN.len()];
                let answer = ask::ask(&library, Some(&model), q, &options).unwrap();
                memreader::session::record(
                    &library,
                    "concurrent",
                    &memreader::session::HistoryEntry {
                        asked_at: 0,
                        docs: Vec::new(),
                        answer: answer.clone(),
                    },
                )
                .unwrap();
                (i, answer)
            })
        })
        .collect();
    for t in threads {
        let (i, answer) = t.join().unwrap();
        assert_eq!(answer, sequential[i % KNOWN.len()]);
    }
    // every thread's entry is in the history, none torn
    let session = memreader::session::load(&library, "concurrent").unwrap();
    assert_eq!(session.history.len(), 2 * KNOWN.len());
}

#[test]
fn the_cli_reads_asks_and_keeps_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let books = common::books(&tmp.path().join("books"));
    let model = common::tiny_model(&tmp.path().join("model"));
    let lib = tmp.path().join("library");
    let mut args = vec!["ingest".to_owned()];
    args.extend(books.iter().map(|b| b.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(cli(&lib, &model, &args));
    let out = ok(cli(&lib, &model, &["read", "--max-tokens", "2048"]));
    assert_eq!(out.matches("2048/").count(), 2, "{out}");
    let out = ok(cli(
        &lib,
        &model,
        &["ask", "What is the pass key?", "--json"],
    ));
    let answer: Answer = serde_json::from_str(&out).unwrap();
    assert!(answer.text.contains("68491"), "{answer:#?}");
    let out = ok(cli(&lib, &model, &["ask", "Does Life imitate Art?"]));
    assert!(out.contains("Q: Does Life imitate Art?"), "{out}");
    assert!(out.contains("wilde"), "{out}");
    assert!(out.contains("[chars "), "{out}");
    let printed = out;
    let out = ok(cli(&lib, &model, &["history", "--json"]));
    let history: Vec<memreader::session::HistoryEntry> = serde_json::from_str(&out).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].answer, answer);
    // the generated answer was printed as it streamed, then the extracted one in its place
    let asked = &history[1].answer;
    let generated = asked.generated.as_deref().unwrap();
    let mut lines = printed.lines().filter(|l| l.starts_with("A: "));
    if !generated.is_empty() {
        let line = format!(
            "A: {}  [generated, not used]",
            generated.replace(char::is_whitespace, " ")
        );
        assert_eq!(lines.next(), Some(line.as_str()), "{printed}");
    }
    let line = format!(
        "A: {} (extracted from [1])",
        asked.text.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert_eq!(lines.next(), Some(line.as_str()), "{printed}");
    assert_eq!(lines.next(), None, "{printed}");
    // memory-aware search merges memory pointers into the BM25 hits
    let out = ok(cli(
        &lib,
        &model,
        &["search", "--memory", "grandmother wolf"],
    ));
    assert!(out.contains("[1] "), "{out}");
    assert!(out.contains("bm25 "), "{out}");
    let out = ok(cli(
        &lib,
        &model,
        &["notes", "--json", &doc_id_prefix(&out)],
    ));
    let notes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(notes["tokens_read"], 2048);
}

/// The document id prefix printed at the end of the first citation line.
fn doc_id_prefix(search_output: &str) -> String {
    let line = search_output.lines().find(|l| l.contains("[1] ")).unwrap();
    line.rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned()
}

#[test]
fn commands_that_need_the_model_name_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("library");
    let missing = tmp.path().join("no-model");
    let books = common::books(&tmp.path().join("books"));
    ok(cli(
        &lib,
        &missing,
        &["ingest", &books[0].display().to_string()],
    ));
    let err = fails(cli(&lib, &missing, &["read"]));
    assert!(
        err.contains(&missing.join("config.json").display().to_string()),
        "{err}"
    );
    assert!(err.contains("the model is missing"), "{err}");
    // asking works without it, from BM25, and says so
    let out = cli(&lib, &missing, &["ask", "What is the pass key?"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = ok(out);
    assert!(stdout.contains("68491"), "{stdout}");
    assert!(stderr.contains("no model"), "{stderr}");
}
