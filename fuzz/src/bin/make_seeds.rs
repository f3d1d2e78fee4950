//! Writes the seed corpora, `fuzz/seeds/TARGET/NAME`, from real files: the ingest fixtures
//! (PDFs, EPUB 2 and 3), slices of the bundled public-domain demo books, small hand-written
//! HTML and Markdown, model files (config JSON, a memory state, weights) of the fuzz
//! configuration, and session snapshots exported from a library that read two short books
//! with the snapshot model (`memreader_fuzz::write_snapshot_model`, the same in every
//! process) and asked a question. Run by scripts/fuzz.sh before fuzzing; the seeds are not
//! committed.
//!
//! It is a libFuzzer binary like the targets (its dependencies are built instrumented, and
//! only libFuzzer's runtime links them): run it with `-runs=1`, it writes the seeds on its
//! first input.
#![no_main]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ingest::fixtures::{self, EpubFlaws, EpubVersion};
use memmamba::Config;
use memreader::library::{Library, PdfIsolation};
use memreader::memory::{self, ReadOptions};
use memreader::model::Model;
use memreader::{ask, session, snapshot};
use memreader_fuzz::{fuzz_config, fuzz_model, join_structured, scratch_dir, write_snapshot_model};

static WRITTEN: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|_input: &[u8]| WRITTEN.call_once(write_seeds));

fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("seeds");
    let books = root.join("../assets/demo");
    let mut text_seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for book in ["household-stories-grimm.txt", "intentions-wilde.txt"] {
        let bytes = std::fs::read(books.join(book)).expect("the demo books are in assets/demo");
        let stem = book.trim_end_matches(".txt");
        // The Gutenberg header, a stretch with chapter or title headings, the footer.
        let middle = bytes.len() / 3;
        text_seeds.push((format!("{stem}-head"), bytes[..6000].to_vec()));
        text_seeds.push((
            format!("{stem}-middle"),
            bytes[middle..middle + 6000].to_vec(),
        ));
        text_seeds.push((format!("{stem}-tail"), bytes[bytes.len() - 6000..].to_vec()));
    }
    text_seeds.push((
        "windows-1252".into(),
        b"CHAPTER I\r\n\r\n\x93Caf\xe9,\x94 she said \x97 Mr. Smith\x85 left.\r\n".to_vec(),
    ));
    text_seeds.push((
        "bom-utf8".into(),
        "\u{feff}PART ONE\n\nÜber Straße — «naïve» 東京.\n\nPART TWO\n\nEnd.".into(),
    ));
    for (name, bytes) in &text_seeds {
        for (i, ext) in [(0u8, "txt"), (1, "md")] {
            write(
                &out,
                "sniff_text",
                &format!("{name}.{ext}"),
                &prefixed(i, bytes),
            );
        }
        write(&out, "passages", name, &prefixed(0, bytes));
    }

    let html = [
        ("page", HTML.as_bytes().to_vec()),
        ("xhtml", XHTML.as_bytes().to_vec()),
    ];
    for (name, bytes) in &html {
        write(&out, "html", name, bytes);
        write(
            &out,
            "passages",
            &format!("{name}.html"),
            &prefixed(2, bytes),
        );
        write(
            &out,
            "sniff_text",
            &format!("{name}.html"),
            &prefixed(4, bytes),
        );
    }
    write(&out, "markdown", "book", MARKDOWN.as_bytes());
    write(
        &out,
        "passages",
        "book.md",
        &prefixed(1, MARKDOWN.as_bytes()),
    );

    let chapters = [
        ("The First", "It was a dark night.\n\nThe rain fell."),
        ("The Second", "Morning came. Mr. Brown woke."),
    ];
    for (name, version) in [("epub2", EpubVersion::Two), ("epub3", EpubVersion::Three)] {
        let book = fixtures::epub(version, "Seed", "Author", &chapters, EpubFlaws::default());
        write(&out, "epub", name, &book);
    }

    let pages = [
        "First page. It has words.",
        "Second page.\n\nA new paragraph.",
    ];
    write(&out, "pdf", "two-pages", &fixtures::pdf(&pages));
    write(
        &out,
        "pdf",
        "encrypted-empty",
        &fixtures::encrypted_pdf(&pages, ""),
    );
    write(
        &out,
        "pdf",
        "encrypted-secret",
        &fixtures::encrypted_pdf(&pages, "secret"),
    );
    write(&out, "pdf", "image-only", &fixtures::image_only_pdf(1));
    write(&out, "pdf", "panicking", &fixtures::panicking_pdf());

    for name in memmamba::PRESET_NAMES {
        let json = Config::preset(name).expect("a preset").to_json_string();
        write(&out, "config_json", name, json.as_bytes());
    }
    write(
        &out,
        "config_json",
        "fuzz",
        fuzz_config().to_json_string().as_bytes(),
    );

    let model = fuzz_model();
    let device = Device::Cpu;
    for (name, batch, tokens) in [("fresh", 1, 0), ("read-3", 1, 3), ("batch2-read-6", 2, 6)] {
        let mut state = model.new_state(batch).expect("a state");
        if tokens > 0 {
            let ids: Vec<u32> = (0..batch * tokens).map(|i| (i % 16) as u32).collect();
            let ids = Tensor::from_vec(ids, (batch, tokens), &device).expect("token ids");
            model.read(&mut state, &ids).expect("the model reads");
        }
        write(
            &out,
            "snapshot",
            name,
            &state.to_bytes().expect("a state saves"),
        );
    }
    write(
        &out,
        "weights",
        "fresh",
        &model.weights_to_bytes().expect("weights save"),
    );

    for (name, bytes) in session_snapshots(&books) {
        write(&out, "session_snapshot", name, &bytes);
        write(
            &out,
            "session_snapshot_structured",
            name,
            &join_structured(&bytes),
        );
    }
}

/// Snapshots exported the way `memreader snapshot export` does: one after reading 40 tokens
/// of a short book; one after reading it and a second one to the end and asking a question
/// (two states and a history entry).
fn session_snapshots(books: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let dir = scratch_dir("seeds");
    write_snapshot_model(&dir.join("model"));
    let model = Model::load(&dir.join("model"), &Device::Cpu).expect("the model loads");
    let library = Library::open(&dir.join("library")).expect("a library opens");
    let mut paths = Vec::new();
    for book in ["household-stories-grimm.txt", "intentions-wilde.txt"] {
        let text = std::fs::read_to_string(books.join(book)).expect("a demo book");
        let start = text.len() / 2;
        let start = (start..).find(|&i| text.is_char_boundary(i)).unwrap();
        let end = (start + 1500..)
            .find(|&i| text.is_char_boundary(i))
            .unwrap();
        let path = dir.join(book);
        std::fs::write(&path, &text[start..end]).expect("a book can be staged");
        paths.push(path);
    }
    let options = ingest::IngestOptions::new(PdfIsolation::InProcess);
    let report = library
        .ingest(&paths, &options, &mut |_| {})
        .expect("the books ingest");
    assert_eq!(report.ingested.len(), 2, "{report:?}");
    let ids: Vec<String> = library
        .documents()
        .expect("the catalog lists")
        .into_iter()
        .map(|d| d.id)
        .collect();
    let read = |id: &str, max_tokens: Option<u64>| {
        let options = ReadOptions {
            max_tokens,
            ..ReadOptions::default()
        };
        memory::read(&library, &model, id, &options, &mut |_| {}).expect("a book reads");
    };
    let export = || {
        let file = dir.join("export.memsnap");
        snapshot::export(&library, &model, session::DEFAULT_SESSION, &file)
            .expect("the session exports");
        std::fs::read(&file).expect("the snapshot reads")
    };
    read(&ids[0], Some(40));
    let one = export();
    read(&ids[0], None);
    read(&ids[1], None);
    let question = "What did the keeper say?";
    let answer = ask::ask(
        &library,
        Some(&model),
        question,
        &ask::AskOptions::default(),
    )
    .expect("a question is answered");
    let entry = session::HistoryEntry {
        asked_at: 1_700_000_000,
        docs: Vec::new(),
        answer,
    };
    session::record(&library, session::DEFAULT_SESSION, &entry).expect("the answer is kept");
    let two = export();
    let _ = std::fs::remove_dir_all(&dir);
    vec![("one-document", one), ("two-documents-history", two)]
}

/// `bytes` after a first byte that the target reads as a choice.
fn prefixed(first: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend_from_slice(bytes);
    out
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir: PathBuf = out.join(target);
    std::fs::create_dir_all(&dir).expect("the seed folder can be made");
    std::fs::write(dir.join(name), bytes).expect("a seed can be written");
}

const HTML: &str = r#"<!DOCTYPE html>
<html lang="en"><head><title>A Page</title><meta name="author" content="Someone">
<style>p { color: red }</style><script>var x = "<p>";</script></head>
<body><h1>Title</h1><h2>One</h2><p>First <b>bold</b> paragraph.<br>Line two.</p>
<ul><li>an item</li><li>another</li></ul><table><tr><td>a</td><td>b</td></tr></table>
<h2>Two</h2><pre>  code
   kept</pre><p>Dr. Who met Mrs. Smith. They talked! Then&nbsp;left&hellip;</p></body></html>
"#;

const XHTML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="fr">
<head><title>Chapitre</title></head>
<body><section epub:type="chapter"><h1>Chapitre I</h1><p>Il était une fois.</p></section></body>
</html>
"#;

const MARKDOWN: &str = "---\ntitle: \"A Book\"\nauthor: Someone\nlang: en\n---\n\n# A Book\n\n\
## Part one\n\nSome *emphasis*, a [link](http://example.com) and `code`.\n\n\
| a | b |\n|---|---|\n| 1 | 2 |\n\n- item\n- item two\n\n```rust\nfn main() {}\n```\n\n\
## Part two\n\n> A quote.\n\n1. first\n2. second\n\nThe end. Mr. Jones agreed.\n";
