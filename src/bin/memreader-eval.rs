//! Measures MemReader's question answering (docs/EVAL.md) and prints markdown tables:
//!
//! 1. **Citation accuracy** on questions with known gold passages over held-out books: for
//!    sampled sentences of each book, the question is the sentence's content words with every
//!    third one left out, in shuffled order; the gold passage is the one holding the sentence.
//!    Accuracy at 1 and at 5 for the full pipeline, BM25 alone and memory pointers alone.
//! 2. **Pass key through `ask`**: the book's text repeated to L tokens with "The pass key is
//!    NNNNN. Remember it. NNNNN is the pass key." at depth 0.5, read whole, then asked.
//! 3. **Snapshots**: size and export/import time after reading N tokens.
//!
//! ```text
//! cargo run --release --bin memreader-eval -- [--model DIR] [--device auto] [--books DIR]
//!     [--questions 40] [--read-tokens N] [--passkey 65536,262144,1048576]
//!     [--snapshot 1024,16384,131072]
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use memreader::ask::{self, AskOptions};
use memreader::library::{Library, PdfIsolation};
use memreader::memory::{self, ReadOptions};
use memreader::model::{self, Model};
use memreader::text::{content_words, sentences, CharMap};

struct Args {
    model: Option<PathBuf>,
    device: String,
    books: PathBuf,
    questions: usize,
    read_tokens: Option<u64>,
    passkey: Vec<u64>,
    snapshot: Vec<u64>,
}

fn list(value: &str) -> Result<Vec<u64>> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .context("a comma-separated list of numbers")
        })
        .collect()
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        model: None,
        device: "auto".into(),
        books: memreader::demo_books_dir(),
        questions: 40,
        read_tokens: None,
        passkey: vec![65_536, 262_144, 1_048_576],
        snapshot: vec![1_024, 16_384, 131_072],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.model = Some(value()?.into()),
            "--device" => args.device = value()?,
            "--books" => args.books = value()?.into(),
            "--questions" => args.questions = value()?.parse().context("--questions")?,
            "--read-tokens" => args.read_tokens = Some(value()?.parse().context("--read-tokens")?),
            "--passkey" => args.passkey = list(&value()?)?,
            "--snapshot" => args.snapshot = list(&value()?)?,
            _ => bail!("unknown argument {flag} (see the comment at the top of memreader-eval.rs)"),
        }
    }
    Ok(args)
}

/// A small deterministic generator (xorshift64*), so every run asks the same questions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn ingest(library: &Library, paths: &[PathBuf]) -> Result<Vec<String>> {
    let report = library.ingest(
        paths,
        &ingest::IngestOptions::new(PdfIsolation::InProcess),
        &mut |_| {},
    )?;
    if let Some(failure) = report.failed.first() {
        bail!("{failure}");
    }
    Ok(report.ingested.into_iter().map(|d| d.id).collect())
}

fn read(library: &Library, model: &Model, id: &str, max_tokens: Option<u64>) -> Result<f64> {
    let options = ReadOptions {
        max_tokens,
        ..ReadOptions::default()
    };
    let report = memory::read(library, model, id, &options, &mut |p| {
        if p.done % (64 * 1024) < memory::READ_BLOCK as u64 {
            eprint!("\r  read {}/{} tokens", p.done, p.target);
        }
    })?;
    eprintln!();
    Ok(report.tokens_per_second)
}

fn books(dir: &Path) -> Result<Vec<PathBuf>> {
    let paths = memreader::book::demo_book_paths(dir)?;
    if paths.is_empty() {
        bail!("{}: no .txt books", dir.display());
    }
    Ok(paths)
}

fn citations(args: &Args, model: &Model, scratch: &Path) -> Result<()> {
    let library = Library::open(&scratch.join("citations"))?;
    let ids = ingest(&library, &books(&args.books)?)?;
    for id in &ids {
        let speed = read(&library, model, id, args.read_tokens)?;
        eprintln!("  {:.0} tokens/s", speed);
    }
    let configs: [(&str, AskOptions); 3] = [
        ("full pipeline", AskOptions::default()),
        (
            "BM25 alone",
            AskOptions {
                memory: 0,
                rerank: 0,
                ..AskOptions::default()
            },
        ),
        (
            "memory pointers alone",
            AskOptions {
                bm25: 0,
                rerank: 0,
                ..AskOptions::default()
            },
        ),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut hits = [[0usize; 2]; 3];
    let mut asked = 0;
    for id in &ids {
        let doc = library.text(id)?;
        let map = CharMap::new(&doc.text);
        let passages = ingest::split_passages(&doc, id);
        let read_chars = match memory::info(&library, id)? {
            Some(info) => {
                let offsets = memory::token_offsets(&library, model, id, &doc)?;
                offsets
                    .get(info.tokens_read as usize)
                    .map_or(map.len_chars(), |&c| c as usize)
            }
            None => 0,
        };
        let readable: Vec<_> = passages
            .iter()
            .filter(|p| p.range.end <= read_chars)
            .collect();
        let mut tries = 0;
        let mut made = 0;
        while made < args.questions && tries < args.questions * 20 && !readable.is_empty() {
            tries += 1;
            let passage = readable[rng.below(readable.len())];
            let sents = sentences(&map, &doc.text, &passage.range);
            let Some(sentence) = sents.get(rng.below(sents.len())) else {
                continue;
            };
            let mut words = content_words(map.slice(&doc.text, sentence));
            if !(8..=40).contains(&words.len()) {
                continue;
            }
            let mut kept: Vec<String> = words
                .drain(..)
                .enumerate()
                .filter(|(i, _)| i % 3 != 2)
                .map(|(_, w)| w)
                .collect();
            for i in (1..kept.len()).rev() {
                kept.swap(i, rng.below(i + 1));
            }
            let question = format!("Where is it said: {}?", kept.join(" "));
            for (k, (_, options)) in configs.iter().enumerate() {
                let options = AskOptions {
                    docs: vec![id.clone()],
                    ..options.clone()
                };
                let (cites, _) = ask::search(&library, Some(model), &question, &options, 5)?;
                if let Some(rank) = cites.iter().position(|c| c.passage == passage.range) {
                    hits[k][0] += usize::from(rank == 0);
                    hits[k][1] += 1;
                }
            }
            made += 1;
            asked += 1;
        }
    }
    println!(
        "\n### Citation accuracy ({asked} questions over {} books)\n",
        ids.len()
    );
    println!("| ranking | accuracy at 1 | accuracy at 5 |");
    println!("|---|---|---|");
    for (k, (name, _)) in configs.iter().enumerate() {
        let pct = |n: usize| 100.0 * n as f64 / asked.max(1) as f64;
        println!(
            "| {name} | {:.1}% | {:.1}% |",
            pct(hits[k][0]),
            pct(hits[k][1])
        );
    }
    Ok(())
}

fn passkey(args: &Args, model: &Model, scratch: &Path) -> Result<()> {
    if args.passkey.is_empty() {
        return Ok(());
    }
    let book = &books(&args.books)?[0];
    let base = std::fs::read_to_string(book).with_context(|| book.display().to_string())?;
    let base_tokens = model.encode(&base)?.len().max(1) as u64;
    println!(
        "\n### Pass key through `ask` (depth 0.5, book {})\n",
        book.display()
    );
    println!("| tokens | read tokens/s | answer | kind | correct |");
    println!("|---|---|---|---|---|");
    let mut rng = Rng(0x7a55_4e11_0000_0042);
    for (n, &length) in args.passkey.iter().enumerate() {
        let key = 10_000 + rng.below(90_000);
        let sentence = format!("The pass key is {key}. Remember it. {key} is the pass key.");
        let repeats = length.div_ceil(base_tokens) as usize;
        let mut text = base.repeat(repeats);
        let target_bytes = (text.len() as u64 * length / (base_tokens * repeats as u64)) as usize;
        let mut cut = target_bytes.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        let mut middle = text.len() / 2;
        while !text.is_char_boundary(middle) {
            middle += 1;
        }
        let at = text[middle..].find("\n\n").map_or(middle, |p| middle + p);
        text.insert_str(at, &format!("\n\n{sentence}"));
        let dir = scratch.join(format!("passkey-{n}"));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("book.txt");
        std::fs::write(&file, &text)?;
        let library = Library::open(&dir.join("library"))?;
        let id = ingest(&library, &[file])?.remove(0);
        let speed = read(&library, model, &id, None)?;
        let answer = ask::ask(
            &library,
            Some(model),
            "What is the pass key?",
            &AskOptions::default(),
        )?;
        let correct = answer.text.contains(&key.to_string());
        println!(
            "| {} | {:.0} | {:?} | {:?} | {} |",
            memory::info(&library, &id)?.map_or(0, |i| i.tokens_read),
            speed,
            answer.text.chars().take(60).collect::<String>(),
            answer.kind,
            if correct { "yes" } else { "no" }
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn snapshots(args: &Args, model: &Model, scratch: &Path) -> Result<()> {
    if args.snapshot.is_empty() {
        return Ok(());
    }
    let book = books(&args.books)?.remove(0);
    println!(
        "\n### Snapshot size and time vs tokens read ({})\n",
        book.display()
    );
    println!("| tokens read | snapshot bytes | export ms | import ms |");
    println!("|---|---|---|---|");
    for (n, &length) in args.snapshot.iter().enumerate() {
        let dir = scratch.join(format!("snapshot-{n}"));
        let library = Library::open(&dir.join("a"))?;
        let id = ingest(&library, std::slice::from_ref(&book))?.remove(0);
        read(&library, model, &id, Some(length))?;
        let file = dir.join("s.memsnap");
        let started = Instant::now();
        let report = memreader::snapshot::export(&library, model, "default", &file)?;
        let export_ms = started.elapsed().as_secs_f64() * 1e3;
        let other = Library::open(&dir.join("b"))?;
        let started = Instant::now();
        memreader::snapshot::import(&other, model, &file, None)?;
        let import_ms = started.elapsed().as_secs_f64() * 1e3;
        println!(
            "| {} | {} | {export_ms:.1} | {import_ms:.1} |",
            report.documents[0].tokens_read, report.bytes
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    memmamba::alloc::single_malloc_arena();
    let args = parse_args()?;
    let choice = memmamba::device::parse_device(&args.device)?;
    let (device, notice) = memmamba::device::select(choice)?;
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    let model = Model::load(&model::model_dir(args.model.as_deref()), &device)?;
    println!(
        "MemReader {} eval: model {} (weights blake3 {}), device {:?}",
        memreader::version(),
        model.dir().display(),
        &model.weights_blake3()[..12],
        device
    );
    let scratch = tempdir()?;
    let result = citations(&args, &model, &scratch)
        .and_then(|()| passkey(&args, &model, &scratch))
        .and_then(|()| snapshots(&args, &model, &scratch));
    // scratch space; a failure to delete it does not change the figures
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("memreader-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}
