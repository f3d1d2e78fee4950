//! Reading documents into memory: resuming, checkpoints, offsets, constant size, the CLI.

mod common;

use std::sync::atomic::Ordering;

use common::{cli, doc_id, ok};
use memreader::memory::{self, ReadOptions};

#[test]
fn a_stopped_reading_resumes_and_ends_where_one_sitting_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let model = common::load(&common::tiny_model(&tmp.path().join("model")));
    let id = doc_id(&library, "grimm");
    let options = ReadOptions {
        max_tokens: Some(3000),
        checkpoint_tokens: 1024,
        ..ReadOptions::default()
    };
    // stop once 2,048 tokens are read (at the end of a block: blocks are a power of two)
    let cancel = options.cancel.clone();
    let first = memory::read(&library, &model, &id, &options, &mut |p| {
        if p.done >= 2048 {
            cancel.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(first.cancelled);
    assert_eq!(first.tokens_read, 2048);
    let info = memory::info(&library, &id).unwrap().unwrap();
    assert_eq!((info.tokens_read, info.target_tokens), (2048, 3000));
    assert!(!info.complete());

    options.cancel.store(false, Ordering::SeqCst);
    let mut seen = Vec::new();
    let second = memory::read(&library, &model, &id, &options, &mut |p| seen.push(p.done)).unwrap();
    assert_eq!((second.resumed_from, second.tokens_read), (2048, 3000));
    // progress at the resume point, then after every block up to the target
    let block = model.net().read_block();
    let expected: Vec<u64> = std::iter::once(2048)
        .chain((2048 + block as u64..3000).step_by(block))
        .chain(std::iter::once(3000))
        .collect();
    assert_eq!(seen, expected);
    assert!(memory::info(&library, &id).unwrap().unwrap().complete());
    let resumed = std::fs::read(memory::state_path(&library, &id)).unwrap();

    // nothing left to read
    let again = memory::read(&library, &model, &id, &options, &mut |_| {}).unwrap();
    assert!(again.up_to_date);
    assert_eq!(again.tokens_read, 3000);

    // one sitting from the start gives the same state, byte for byte
    let restart = ReadOptions {
        restart: true,
        ..options.clone()
    };
    let whole = memory::read(&library, &model, &id, &restart, &mut |_| {}).unwrap();
    assert_eq!((whole.resumed_from, whole.tokens_read), (0, 3000));
    let straight = std::fs::read(memory::state_path(&library, &id)).unwrap();
    assert!(resumed == straight, "the resumed state differs");

    // reading further continues from 3000
    let more = ReadOptions {
        max_tokens: Some(4000),
        ..options
    };
    let further = memory::read(&library, &model, &id, &more, &mut |_| {}).unwrap();
    assert_eq!((further.resumed_from, further.tokens_read), (3000, 4000));
    // the document joined the default session
    let session = memreader::session::load(&library, "default").unwrap();
    assert_eq!(session.documents, [id]);
}

#[test]
fn token_offsets_point_at_each_token_in_the_text() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let model = common::load(&common::tiny_model(&tmp.path().join("model")));
    for part in ["grimm", "wilde"] {
        let id = doc_id(&library, part);
        let doc = library.text(&id).unwrap();
        let (ids, starts) = model.encode_document(&doc.text).unwrap();
        assert_eq!(ids.len(), starts.len());
        // byte-level BPE: the tokens decode to the text, byte for byte
        assert_eq!(model.decode(&ids).unwrap(), doc.text);
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        let chars: Vec<char> = doc.text.chars().collect();
        assert!(*starts.last().unwrap() as usize <= chars.len());
        for i in (0..ids.len()).step_by(97) {
            let token = model.decode(&ids[i..=i]).unwrap();
            let token = token.trim_start();
            if token.is_empty() || token.contains('\u{fffd}') {
                continue; // whitespace, or part of a multi-byte char
            }
            // the offset is the token's first char or the whitespace just before it
            let at: String = chars[starts[i] as usize..]
                .iter()
                .skip_while(|c| c.is_whitespace())
                .take(token.chars().count())
                .collect();
            assert_eq!(at, token, "token {i} of {part}");
        }
        // the stored offsets are the same
        let options = ReadOptions {
            max_tokens: Some(64),
            ..ReadOptions::default()
        };
        memory::read(&library, &model, &id, &options, &mut |_| {}).unwrap();
        assert_eq!(
            memory::token_offsets(&library, &model, &id, &doc).unwrap(),
            starts
        );
    }
}

#[test]
fn the_shipped_model_reads_numbers_one_digit_per_token_in_documents_as_in_questions() {
    let dir = memreader::assets_dir().join("model");
    let model = memreader::model::Model::load(&dir, &candle_core::Device::Cpu).unwrap();
    let digit = |d: char| model.encode(&d.to_string()).unwrap();
    // the key "68491" after a space: " 6", then one token per digit
    let key = model.encode(" 68491.").unwrap();
    assert_eq!(key.len(), 6, "{key:?}");
    for (d, id) in "8491".chars().zip(&key[1..5]) {
        assert_eq!(digit(d), vec![*id]);
    }
    // a document is tokenized in pieces, which must cut numbers no differently
    let mut text = String::new();
    for i in 0..20_000u32 {
        text.push_str(&format!(
            "Verse {i}:{} of 1,{:03} said {}. ",
            i % 7,
            i % 1000,
            i * 37
        ));
    }
    let (ids, starts) = model.encode_document(&text).unwrap();
    assert_eq!(ids, model.encode(&text).unwrap());
    assert_eq!(ids.len(), starts.len());
}

#[test]
fn the_memory_has_the_same_size_after_one_or_four_thousand_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let library = common::library(tmp.path());
    let model = common::load(&common::tiny_model(&tmp.path().join("model")));
    let id = doc_id(&library, "wilde");
    let mut sizes = Vec::new();
    for n in [1024, 4096] {
        let options = ReadOptions {
            max_tokens: Some(n),
            ..ReadOptions::default()
        };
        let report = memory::read(&library, &model, &id, &options, &mut |_| {}).unwrap();
        assert_eq!(report.tokens_read, n);
        sizes.push(report.memory_bytes);
    }
    // the header's numbers may take a few more digits
    assert!(sizes[0].abs_diff(sizes[1]) < 64, "{sizes:?}");
}

#[test]
fn the_cli_reads_while_ingesting_and_says_when_a_memory_is_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let books = common::books(&tmp.path().join("books"));
    let model = common::tiny_model(&tmp.path().join("model"));
    let lib = tmp.path().join("library");
    // a short book, read whole as part of ingestion
    let short = tmp.path().join("short.txt");
    let text = std::fs::read_to_string(&books[0]).unwrap();
    std::fs::write(&short, &text[..20_000]).unwrap();
    let out = ok(cli(
        &lib,
        &model,
        &["ingest", "--read", &short.display().to_string()],
    ));
    assert!(out.contains("ingested  "), "{out}");
    let line = out.lines().find(|l| l.starts_with("read  ")).expect(&out);
    let (done, total) = line
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .split_once('/')
        .unwrap();
    assert_eq!(done, total, "{line}");
    let out = ok(cli(&lib, &model, &["read"]));
    assert!(out.contains("up to date"), "{out}");
    let out = ok(cli(&lib, &model, &["read", "--restart", "--json"]));
    let reports: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reports[0]["resumed_from"], 0);
    assert_eq!(reports[0]["up_to_date"], false);
    // an unknown id is named
    let err = common::fails(cli(&lib, &model, &["read", "ffffffff"]));
    assert!(err.contains("ffffffff"), "{err}");
}
