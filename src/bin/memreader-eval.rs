//! Measures MemReader's question answering (docs/EVAL.md) and prints markdown tables:
//!
//! 1. **Citation accuracy** on questions with known gold passages over held-out books: for
//!    sampled sentences of each book (8 to 40 content words, in a passage inside the part read),
//!    one question of each [`Kind`]: the sentence's content words with every third left out
//!    ("sentence words"), three of its topic words ("three words"), or those three and words of
//!    similar use in the book in place of three others ("three words + related words"); always
//!    shuffled, as "Where is it said: ...?". The gold passage is the one holding the sentence.
//!    Accuracy at 1 and at 5 for the full pipeline, BM25 with the words held (the part of the
//!    pipeline that needs no model), BM25 alone and memory pointers alone. With `--fit`, the
//!    full pipeline only (first stage: BM25), and the fusion weights of maximum likelihood on
//!    these questions, printed as `ask::FUSION` (run it on books that no reported figure uses).
//! 2. **Pass key through `ask`**: the book's text repeated to L tokens with "The pass key is
//!    NNNNN. Remember it. NNNNN is the pass key." at depth 0.5, read whole, then asked.
//! 3. **Snapshots**: size and export/import time after reading N tokens.
//!
//! ```text
//! cargo run --release --bin memreader-eval -- [--model DIR] [--device auto] [--books DIR]
//!     [--questions 40] [--read-tokens N] [--passkey 65536,262144,1048576]
//!     [--snapshot 1024,16384,131072] [--fit] [--verbose]
//! ```
//!
//! An empty list (`--passkey ""`) leaves that part out; `--verbose` prints every question
//! (and with `--fit` each one's candidates' scores as JSON).

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
    fit: bool,
    verbose: bool,
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
        fit: false,
        verbose: false,
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
            "--fit" => args.fit = true,
            "--verbose" => args.verbose = true,
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
        if p.done % (64 * 1024) < model.net().read_block() as u64 {
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

/// The kinds of question asked of each sampled sentence (docs/EVAL.md, "Asking with citations").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The sentence's content words with every third left out, shuffled.
    Words,
    /// Three of the sentence's distinct topic words ([`Neighbours::common`]), at random,
    /// shuffled.
    Few,
    /// The three words of `Few` and, for three other distinct topic words of the sentence, the
    /// word of most similar use in the book ([`Neighbours::of`]), shuffled.
    Related,
}

const KINDS: [(Kind, &str); 3] = [
    (Kind::Words, "sentence words"),
    (Kind::Few, "three words"),
    (Kind::Related, "three words + related words"),
];

/// Words of similar use, from one book's text alone: each content word that occurs at least
/// `MIN_COUNT` times is a vector of positive pointwise mutual information with the content
/// words (of the same minimum count) within `WINDOW` words of it; a word's neighbour is the
/// word whose vector has the highest cosine with its own, other than words of the sentence
/// asked about, words sharing their first four letters with it (the index stems words, so
/// those would be the same word to BM25) and the book's most common words ([`Neighbours::common`]). Such neighbours are words used in the same contexts
/// ("king" ~ "queen", "said" ~ "cried"), not words of the same sentence.
struct Neighbours {
    ids: std::collections::HashMap<String, u32>,
    words: Vec<String>,
    /// Per word id: (context id, PPMI) sorted by context id, and the vector's norm.
    vectors: Vec<(Vec<(u32, f32)>, f32)>,
    /// The book's `COMMON` most frequent content words.
    common: std::collections::HashSet<String>,
}

impl Neighbours {
    const MIN_COUNT: usize = 5;
    const WINDOW: usize = 4;
    const COMMON: usize = 100;

    fn new(text: &str) -> Neighbours {
        use std::collections::HashMap;
        let tokens = content_words(text);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in &tokens {
            *counts.entry(t.as_str()).or_default() += 1;
        }
        let mut words: Vec<String> = counts
            .iter()
            .filter(|(_, &n)| n >= Self::MIN_COUNT)
            .map(|(w, _)| (*w).to_owned())
            .collect();
        let mut by_count: Vec<(&str, usize)> = counts.iter().map(|(w, n)| (*w, *n)).collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let common = by_count
            .iter()
            .take(Self::COMMON)
            .map(|(w, _)| (*w).to_owned())
            .collect();
        words.sort();
        let ids: HashMap<String, u32> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        let seq: Vec<Option<u32>> = tokens.iter().map(|t| ids.get(t).copied()).collect();
        let mut pairs: HashMap<(u32, u32), f32> = HashMap::new();
        let mut margins = vec![0.0f32; words.len()];
        let mut total = 0.0f32;
        for (i, a) in seq.iter().enumerate() {
            let Some(a) = a else { continue };
            for b in seq[i + 1..seq.len().min(i + 1 + Self::WINDOW)]
                .iter()
                .flatten()
            {
                for (x, y) in [(*a, *b), (*b, *a)] {
                    *pairs.entry((x, y)).or_default() += 1.0;
                    margins[x as usize] += 1.0;
                    total += 1.0;
                }
            }
        }
        let mut vectors: Vec<(Vec<(u32, f32)>, f32)> = vec![(Vec::new(), 0.0); words.len()];
        for (&(w, c), &n) in &pairs {
            let pmi = (n * total / (margins[w as usize] * margins[c as usize])).ln();
            if pmi > 0.0 {
                vectors[w as usize].0.push((c, pmi));
            }
        }
        for (v, norm) in &mut vectors {
            v.sort_by_key(|&(c, _)| c);
            *norm = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
        }
        Neighbours {
            ids,
            words,
            vectors,
            common,
        }
    }

    /// Whether `word` is one of the book's [`Self::COMMON`] most frequent content words
    /// ("said", "would", "little", "there", ...): a question names what a sentence is about,
    /// and these say little of that, so the `Few` and `Related` kinds leave them out.
    fn common(&self, word: &str) -> bool {
        self.common.contains(word)
    }

    /// The neighbour of `word` outside `exclude` (see the type's docs), if it has one.
    fn of(&self, word: &str, exclude: &[String]) -> Option<String> {
        let &id = self.ids.get(word)?;
        let (v, norm) = &self.vectors[id as usize];
        if *norm == 0.0 {
            return None;
        }
        let prefix = |w: &str| w.chars().take(4).collect::<String>();
        let mut best: Option<(f32, u32)> = None;
        for (other, (u, unorm)) in self.vectors.iter().enumerate() {
            let other = other as u32;
            if other == id || *unorm == 0.0 {
                continue;
            }
            let (mut i, mut j, mut dot) = (0, 0, 0.0f32);
            while i < v.len() && j < u.len() {
                match v[i].0.cmp(&u[j].0) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        dot += v[i].1 * u[j].1;
                        i += 1;
                        j += 1;
                    }
                }
            }
            let cos = dot / (norm * unorm);
            if best.is_none_or(|(b, _)| cos > b) {
                let w = &self.words[other as usize];
                let clash = self.common(w)
                    || exclude
                        .iter()
                        .chain(std::iter::once(&word.to_owned()))
                        .any(|e| e == w || prefix(e) == prefix(w));
                if !clash {
                    best = Some((cos, other));
                }
            }
        }
        best.map(|(_, w)| self.words[w as usize].clone())
    }
}

fn shuffle(words: &mut [String], rng: &mut Rng) {
    for i in (1..words.len()).rev() {
        words.swap(i, rng.below(i + 1));
    }
}

/// The sentence's distinct topic words (not [`Neighbours::common`]) in an order drawn by `rng`:
/// `Few` asks the first three, `Related` the same three and the neighbours of the next three.
fn topic_words(words: &[String], neighbours: &Neighbours, rng: &mut Rng) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for w in words {
        if !distinct.contains(w) && !neighbours.common(w) {
            distinct.push(w.clone());
        }
    }
    shuffle(&mut distinct, rng);
    distinct
}

/// The question of `kind` about a sentence whose content words are `words` (8 to 40 of them)
/// and topic words `topic` ([`topic_words`]). `rng` draws the `Words` questions (the same stream
/// as before the other kinds existed, so those questions are unchanged), `other` the rest.
fn question(
    kind: Kind,
    words: &[String],
    topic: &[String],
    neighbours: &Neighbours,
    rng: &mut Rng,
    other: &mut Rng,
) -> String {
    let mut asked: Vec<String> = match kind {
        Kind::Words => words
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 2)
            .map(|(_, w)| w.clone())
            .collect(),
        Kind::Few | Kind::Related => {
            let mut asked: Vec<String> = topic.iter().take(3).cloned().collect();
            if kind == Kind::Related {
                for w in topic.iter().skip(3).take(3) {
                    let exclude: Vec<String> = words.iter().chain(&asked).cloned().collect();
                    asked.extend(neighbours.of(w, &exclude));
                }
            }
            asked
        }
    };
    shuffle(&mut asked, if kind == Kind::Words { rng } else { other });
    format!("Where is it said: {}?", asked.join(" "))
}

/// One question's candidates as the full pipeline scored them, and which is the gold passage.
struct Scored {
    evidence: Vec<ask::Evidence>,
    gold: Option<usize>,
}

fn citations(args: &Args, model: &Model, scratch: &Path) -> Result<()> {
    let library = Library::open(&scratch.join("citations"))?;
    // the questions are drawn book after book from one random stream, and ingestion reports
    // the books in the order they finish (which varies with the machine's load): they are
    // asked in the order of their ids, so every run asks the same questions
    let mut ids = ingest(&library, &books(&args.books)?)?;
    ids.sort();
    for id in &ids {
        let speed = read(&library, model, id, args.read_tokens)?;
        eprintln!("  {:.0} tokens/s", speed);
    }
    let configs: Vec<(&str, AskOptions)> = if args.fit {
        // the candidates and those reranked as BM25 alone orders them, whatever the shipped
        // weights are, so that the fit does not depend on what it fits; the model's weight is
        // not 0 so that it reranks (it reorders the reranked, which the fit does not look at)
        let fusion = ask::Fusion {
            bm25: 1.0,
            memory: 0.0,
            held: 0.0,
            model: 1.0,
        };
        vec![(
            "BM25 reranked by the PMI at weight 1 (the fit's candidates)",
            AskOptions {
                fusion,
                ..AskOptions::default()
            },
        )]
    } else {
        // the shipped weights for the full pipeline and, without the model's scores, for BM25 +
        // words held; a single score's for the others
        vec![
            ("full pipeline", AskOptions::default()),
            (
                "BM25 + words held (no model)",
                AskOptions {
                    memory: 0,
                    rerank: 0,
                    fusion: ask::FUSION_WITHOUT_MODEL,
                    ..AskOptions::default()
                },
            ),
            (
                "BM25 alone",
                AskOptions {
                    memory: 0,
                    rerank: 0,
                    fusion: alone(1.0, 0.0),
                    ..AskOptions::default()
                },
            ),
            ("memory pointers alone", memory_pointers_alone()),
        ]
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut other = Rng(0x0dd5_7a7e_9e11_0003);
    let mut hits = vec![vec![[0usize; 2]; configs.len()]; KINDS.len()];
    let mut scored: Vec<Scored> = Vec::new();
    let mut asked = 0;
    for id in &ids {
        let doc = library.text(id)?;
        let map = CharMap::new(&doc.text);
        let neighbours = Neighbours::new(&doc.text);
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
            let words = content_words(map.slice(&doc.text, sentence));
            if !(8..=40).contains(&words.len()) {
                continue;
            }
            let topic = topic_words(&words, &neighbours, &mut other);
            for (q, &(kind, _)) in KINDS.iter().enumerate() {
                let question = question(kind, &words, &topic, &neighbours, &mut rng, &mut other);
                if args.verbose {
                    eprintln!("  {kind:?}: {question}");
                }
                for (k, (_, options)) in configs.iter().enumerate() {
                    let options = AskOptions {
                        docs: vec![id.clone()],
                        ..options.clone()
                    };
                    let limit = if args.fit { usize::MAX } else { 5 };
                    let (cites, _) =
                        ask::search(&library, Some(model), &question, &options, limit)?;
                    let gold = cites.iter().position(|c| c.passage == passage.range);
                    if let Some(rank) = gold.filter(|&r| r < 5) {
                        hits[q][k][0] += usize::from(rank == 0);
                        hits[q][k][1] += 1;
                    }
                    if args.fit {
                        let evidence = cites
                            .iter()
                            .map(|c| ask::Evidence {
                                bm25: c.bm25,
                                memory: c.memory,
                                held: c.held,
                                model: c.model,
                            })
                            .collect::<Vec<_>>();
                        if args.verbose {
                            let x: Vec<[Option<f32>; 4]> = evidence
                                .iter()
                                .map(|e| [e.bm25, e.memory, e.held, e.model])
                                .collect();
                            let line = serde_json::json!({"kind": format!("{kind:?}"), "gold": gold, "x": x});
                            eprintln!("  features {line}");
                        }
                        scored.push(Scored { evidence, gold });
                    }
                }
            }
            made += 1;
            asked += 1;
        }
    }
    println!(
        "\n### Citation accuracy ({asked} sentences over {} books, one question of each kind)\n",
        ids.len()
    );
    println!("| question kind | ranking | accuracy at 1 | accuracy at 5 |");
    println!("|---|---|---|---|");
    for (q, (_, kind)) in KINDS.iter().enumerate() {
        for (k, (name, _)) in configs.iter().enumerate() {
            let pct = |n: usize| 100.0 * n as f64 / asked.max(1) as f64;
            println!(
                "| {kind} | {name} | {:.1}% | {:.1}% |",
                pct(hits[q][k][0]),
                pct(hits[q][k][1])
            );
        }
    }
    if args.fit {
        fit(&scored, model);
    }
    Ok(())
}

/// The scores the fit weighs, in the order of [`weights`]' coordinates.
const SCORES: [&str; N] = ["bm25", "memory", "held", "model"];

/// How many scores the fit weighs.
const N: usize = 4;

fn weights(w: &[f64; N]) -> ask::Fusion {
    ask::Fusion {
        bm25: w[0] as f32,
        memory: w[1] as f32,
        held: w[2] as f32,
        model: w[3] as f32,
    }
}

/// Twice a gain in log-likelihood above this is significant at p < 0.01 for one added weight
/// (the chi-squared distribution with one degree of freedom).
const CHI2_1_P01: f64 = 6.635;

/// The fusion weights of maximum likelihood: a conditional logit, the probability that a
/// question asks about candidate j being softmax_j(w · x_j) with x_j its scores as `ask::fuse`
/// combines them (the PMI centred over the reranked), fitted by Newton's method over the
/// questions whose gold passage is a candidate. The log-likelihood is concave in w, so this finds
/// its maximum. Prints the weights of BM25 alone, of BM25 with each other score, and of all,
/// with their log-likelihoods and in-sample accuracy at 1; then chooses the scores by forward
/// selection from BM25 alone: the score whose weight raises the log-likelihood most is added
/// while twice that gain is significant ([`CHI2_1_P01`]; where a score carries no signal twice
/// the gain is chi-squared with one degree of freedom), and prints the weights of maximum
/// likelihood of those scores as `ask::FUSION`, for the model they were fitted for.
fn fit(scored: &[Scored], model: &Model) {
    let unit = |i: usize| {
        let mut w = [0.0f64; N];
        w[i] = 1.0;
        weights(&w)
    };
    // each question's feature vectors: fuse() with unit weights gives each coordinate
    let data: Vec<(Vec<[f64; N]>, usize)> = scored
        .iter()
        .filter_map(|s| {
            let gold = s.gold?;
            let cols: Vec<Vec<f32>> = (0..N).map(|i| ask::fuse(&s.evidence, &unit(i))).collect();
            let x = (0..s.evidence.len())
                .map(|j| std::array::from_fn(|i| cols[i][j] as f64))
                .collect();
            Some((x, gold))
        })
        .collect();
    println!(
        "\n### Fusion weights of maximum likelihood ({} questions with the gold passage among the \
         candidates, of {})\n",
        data.len(),
        scored.len()
    );
    println!(
        "| scores | {} | log-likelihood | accuracy at 1 |",
        SCORES.join(" | ")
    );
    println!("|---|{}---|---|", "---|".repeat(N));
    let row = |free: [bool; N]| {
        let w = mle(&data, free);
        let name: Vec<&str> = (0..N).filter(|&i| free[i]).map(|i| SCORES[i]).collect();
        let cells: Vec<String> = w.iter().map(|x| format!("{x:.4}")).collect();
        println!(
            "| {} | {} | {:.2} | {} |",
            name.join(" + "),
            cells.join(" | "),
            loglik(&data, &w),
            top(&data, &w)
        );
    };
    // BM25 alone, BM25 with each other score, then with all of them
    for i in 0..=N {
        row(std::array::from_fn(|j| j == 0 || j == i || i == N));
    }
    let mut chosen: [bool; N] = std::array::from_fn(|j| j == 0);
    let mut best = loglik(&data, &mle(&data, chosen));
    println!(
        "\nForward selection from BM25 alone (p < 0.01: twice the gain above {CHI2_1_P01}):\n"
    );
    loop {
        let gains: Vec<(usize, f64)> = (1..N)
            .filter(|&i| !chosen[i])
            .map(|i| {
                let mut free = chosen;
                free[i] = true;
                (i, loglik(&data, &mle(&data, free)) - best)
            })
            .collect();
        for (i, gain) in &gains {
            println!("- adding {}: twice the gain {:.2}", SCORES[*i], 2.0 * gain);
        }
        match gains.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            Some((i, gain)) if 2.0 * gain > CHI2_1_P01 => {
                println!("- {} is added", SCORES[i]);
                chosen[i] = true;
                best += gain;
            }
            _ => break,
        }
    }
    println!(
        "\n| chosen | {} | log-likelihood | accuracy at 1 |",
        SCORES.join(" | ")
    );
    println!("|---|{}---|---|", "---|".repeat(N));
    row(chosen);
    let w = weights(&mle(&data, chosen));
    println!(
        "\nThe weights for ask.rs (the scores not chosen get 0):\n\n```rust\n\
         pub const FUSION: Fusion = Fusion {{\n    bm25: {:.4},\n    memory: {:.4},\n    \
         held: {:.4},\n    model: {:.4},\n}};\n\
         pub const FUSION_MODEL: &str = \"{}\";\n```",
        w.bm25,
        w.memory,
        w.held,
        w.model,
        &model.weights_blake3()[..12]
    );
}

fn loglik(data: &[(Vec<[f64; N]>, usize)], w: &[f64; N]) -> f64 {
    data.iter()
        .map(|(x, g)| {
            let s: Vec<f64> = x.iter().map(|x| dot(w, x)).collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            s[*g] - m - s.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        })
        .sum()
}

/// Questions whose gold passage scores strictly highest under `w`.
fn top(data: &[(Vec<[f64; N]>, usize)], w: &[f64; N]) -> usize {
    data.iter()
        .filter(|(x, g)| {
            let s: Vec<f64> = x.iter().map(|x| dot(w, x)).collect();
            (0..s.len()).all(|j| j == *g || s[j] < s[*g])
        })
        .count()
}

/// The weights of maximum [`loglik`], those not `free` held at 0 (Newton's method with step
/// halving).
fn mle(data: &[(Vec<[f64; N]>, usize)], free: [bool; N]) -> [f64; N] {
    let mut w = [0.0f64; N];
    for _ in 0..100 {
        let mut grad = [0.0f64; N];
        let mut hess = [[0.0f64; N]; N];
        for (x, g) in data {
            let s: Vec<f64> = x.iter().map(|x| dot(&w, x)).collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            let mut mean = [0.0f64; N];
            for (xj, ej) in x.iter().zip(&e) {
                for a in 0..N {
                    mean[a] += ej / z * xj[a];
                }
            }
            for a in 0..N {
                grad[a] += x[*g][a] - mean[a];
            }
            for (xj, ej) in x.iter().zip(&e) {
                for a in 0..N {
                    for b in 0..N {
                        hess[a][b] -= ej / z * (xj[a] - mean[a]) * (xj[b] - mean[b]);
                    }
                }
            }
        }
        for a in 0..N {
            hess[a][a] -= 1e-6;
            if !free[a] {
                grad[a] = 0.0;
                hess[a] = [0.0; N];
                for row in &mut hess {
                    row[a] = 0.0;
                }
                hess[a][a] = -1.0;
            }
        }
        let step = solve(hess, grad);
        let before = loglik(data, &w);
        let mut t = 1.0;
        let mut next = w;
        while t > 1e-6 {
            next = std::array::from_fn(|a| w[a] - t * step[a]);
            if loglik(data, &next) >= before {
                break;
            }
            t /= 2.0;
        }
        let done = (loglik(data, &next) - before).abs() < 1e-9;
        w = next;
        if done {
            break;
        }
    }
    w
}

fn dot(w: &[f64; N], x: &[f64; N]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// x with a x = b (Gaussian elimination with partial pivoting; `a` is negative definite here).
fn solve(mut a: [[f64; N]; N], mut b: [f64; N]) -> [f64; N] {
    for col in 0..N {
        let pivot = (col..N)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (above, below) = a.split_at_mut(col + 1);
        let row = &above[col];
        for (r, lower) in below.iter_mut().enumerate() {
            let f = lower[col] / row[col];
            for (x, y) in lower.iter_mut().zip(row).skip(col) {
                *x -= f * y;
            }
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut x = [0.0; N];
    for r in (0..N).rev() {
        let rest: f64 = (r + 1..N).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - rest) / a[r][r];
    }
    x
}

/// Fusion weights that rank by BM25 or by the memory score alone (one of them 1, the rest 0).
fn alone(bm25: f32, memory: f32) -> ask::Fusion {
    ask::Fusion {
        bm25,
        memory,
        held: 0.0,
        model: 0.0,
    }
}

/// `ask` ranking only the passages that the memory's notes point to, by their memory score.
fn memory_pointers_alone() -> AskOptions {
    AskOptions {
        bm25: 0,
        rerank: 0,
        fusion: alone(0.0, 1.0),
        ..AskOptions::default()
    }
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
    println!(
        "| tokens | read tokens/s | answer | kind | correct | key's sentence among memory pointers |"
    );
    println!("|---|---|---|---|---|---|");
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
        // whether the memory alone points at the key: the rank of the first citation that
        // quotes it when only the memory's pointers are ranked
        let pointed = ask::ask(
            &library,
            Some(model),
            "What is the pass key?",
            &AskOptions {
                citations: 5,
                ..memory_pointers_alone()
            },
        )?;
        let rank = pointed
            .citations
            .iter()
            .position(|c| c.quote.contains(&key.to_string()))
            .map_or_else(
                || format!("not in {}", pointed.citations.len()),
                |r| format!("rank {}", r + 1),
            );
        println!(
            "| {} | {:.0} | {:?} | {:?} | {} | {rank} |",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_finds_the_x_of_a_x_equals_b() {
        // a zero pivot on the diagonal, so the rows must be swapped
        let a = [
            [0.0, 2.0, 1.0, 0.0],
            [3.0, 1.0, 0.0, 1.0],
            [1.0, 0.0, -4.0, 2.0],
            [2.0, 1.0, 1.0, -3.0],
        ];
        let x = [1.0, -2.0, 0.5, 3.0];
        let b: [f64; N] = std::array::from_fn(|r| dot(&a[r], &x));
        let got = solve(a, b);
        for (g, want) in got.iter().zip(x) {
            assert!((g - want).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn mle_recovers_weights_that_generated_the_choices() {
        // two candidates per question; the first is chosen with probability sigmoid(2 × (its
        // bm25 - the other's)), by a fixed pattern of about that frequency
        let mut rng = Rng(7);
        let data: Vec<(Vec<[f64; N]>, usize)> = (0..4000)
            .map(|_| {
                let d = rng.below(2001) as f64 / 1000.0 - 1.0;
                let p = 1.0 / (1.0 + (-2.0 * d).exp());
                let gold = usize::from(rng.below(1_000_000) as f64 / 1e6 >= p);
                (vec![[d, 0.0, 0.0, 0.0], [0.0; N]], gold)
            })
            .collect();
        let w = mle(&data, std::array::from_fn(|i| i == 0));
        assert!((w[0] - 2.0).abs() < 0.25, "{w:?}");
        assert!(w[1..].iter().all(|&x| x == 0.0), "{w:?}");
    }
}
