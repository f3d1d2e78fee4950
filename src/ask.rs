//! Asking a question of the library: candidates, reranking, an answer, citations.
//!
//! 1. **BM25** ([`AskOptions::bm25`] best passages from the tantivy index).
//! 2. **Memory pointers**: for each document asked about (`--doc`, else those of the BM25
//!    candidates) that has a memory, the model reads [`memmamba::prompt::question_prompt`]
//!    after the document (a copy of its memory state). The question's last token attends over
//!    every layer's summary pool; each note's weight *above uniform* (`w - 1/n` over the `n`
//!    notes it could see, so an untrained model's flat attention points nowhere) goes to the
//!    passage that holds the note's source token. A passage's memory score is that lift
//!    summed over notes and averaged over the attention reads (token and cross-layer, per layer).
//! 3. **Words held**, for every candidate ([`words_held`]): the question's distinct content
//!    words the passage holds, each weighted by its rarity among the candidates
//!    ([`Evidence::held`]). BM25 sums what each word is worth over the whole index and lets a
//!    rare word found once outweigh two others; a passage that has all the words a reader
//!    remembers of it is more often the one asked about.
//! 4. **First-stage score** ([`first_stage`]): `FUSION.bm25 × BM25 + FUSION.memory × memory
//!    score + FUSION.held × words held`, with [`AskOptions::fusion`] (by default [`FUSION`];
//!    without the model it was fitted for, see [`fusion_for`]) giving the weights.
//! 5. **Reranking** ([`AskOptions::rerank`] best of the first stage), only where the model's
//!    PMI has a weight (its forward passes are most of an ask's time on a CPU): the model
//!    scores the question prompt after the passage's window (the sentence holding the most
//!    question words with its neighbours, at most [`RERANK_TOKENS`] tokens) against the prompt
//!    alone: the pointwise mutual information of the question's content words,
//!    `PMI = sum_t [log p(q_t | passage, q_<t) - log p(q_t | q_<t)]` in nats over the tokens
//!    `q_t` of those words (the prompt's frame and the question's function words read the same
//!    after any passage). The final score ([`fuse`]) adds `FUSION.model × (PMI - the mean PMI
//!    of the reranked candidates)` to the first stage: a product of experts, each score read as
//!    the log-odds that the passage is the one asked about. A model that gives every candidate
//!    the same PMI (no signal) leaves the first stage's order as it is, candidates it did not
//!    rerank neither gain nor lose, and a passage the model finds far more likely than the
//!    others comes first (with a positive `FUSION.model`).
//!
//!    The weights are a calibration of each score into log-odds: fitted by maximum likelihood
//!    (conditional logit) on questions over books that no reported figure uses (see
//!    [`FUSION`]), never on the evaluation's questions; a score gets a weight only where it
//!    shows a significant signal there. Without the model they were fitted for, the model's
//!    scores get no weight ([`fusion_for`]).
//! 6. **Answer**: the model reads the best passage and the question prompt and decodes greedily
//!    among the passage's tokens (`answer_vocabulary`) up to the first newline. The generated
//!    answer is used when its mean token log-probability is at least
//!    [`AskOptions::min_logprob`] and its words occur in the passage; otherwise the answer is
//!    the sentence that best matches the question among the [`EXTRACT_FROM`] best passages
//!    (summed IDF of the question's content words it holds, IDF over the candidates'
//!    sentences; of equals the shorter sentence, then the better-ranked passage, wins). "The
//!    best passage" above is the one that sentence comes from; it is cited first.
//!
//! [`ask_with`] streams the answer's text as it is generated ([`AskEvent`]s: pieces of whole
//! chars, then the extracted answer in their place if the generated one is not used); [`ask`]
//! is the same without listening.
//!
//! Every citation is a candidate's best sentence with its document, page or chapter and char
//! range. Without a model (not shipped yet, or not loaded) steps 2, 5 and generation are
//! skipped and the answer says so in its notices.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use ingest::{split_passages, Passage};
use memmamba::prompt::question_prompt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::library::{Document, Library, SearchOptions, Status};
use crate::memory;
use crate::model::Model;
use crate::text::{content_word_ranges, content_words, sentences, CharMap};

/// The extracted answer is the best sentence of this many of the best passages.
pub const EXTRACT_FROM: usize = 5;

/// The most tokens of a passage the model reranks on (see [`AskOptions::rerank`]).
pub const RERANK_TOKENS: usize = 160;

/// The weights that turn each score of a candidate into log-odds that it is the passage asked
/// about (see the module docs, steps 3 to 5): the final score is `bm25 × BM25 + memory ×
/// memory score + held × words held + model × (PMI - mean PMI of the reranked)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    /// Per unit of tantivy's BM25 score.
    pub bm25: f32,
    /// Per unit of memory score (summed attention lift).
    pub memory: f32,
    /// Per unit of the words held ([`Evidence::held`]).
    pub held: f32,
    /// Per nat of the question's PMI given the passage (summed over its content words' tokens).
    pub model: f32,
}

/// The shipped weights (see [`Fusion`]), fitted for the shipped model of weights BLAKE3
/// [`FUSION_MODEL`] (a new model's memory and PMI are on scales of their own, so it needs the
/// fit again) on 360 questions (120 sentences, one question of each kind) over six
/// books of the corpus's `dev` split that no reported figure uses: 0006, 0019, 0056, 0079, 0142
/// and 0235 (docs/EVAL.md, "Asking with citations"), never on the evaluation's questions. The
/// fit prints these two constants, to paste here:
///
/// ```text
/// memreader-eval --device cpu --questions 20 --read-tokens 16384 --passkey "" --snapshot "" \
///     --fit --books DIR   # those six books, decompressed from ../shared/corpus/books
/// ```
///
/// A score has a weight only where it raises the log-likelihood significantly: scores are
/// added to BM25 one at a time, the one of largest gain first, while twice its gain is above
/// 6.63 (likelihood-ratio test, p < 0.01); the weights are the maximum-likelihood ones of the
/// scores added. For this model (run J, docs/MODEL_CARD.md) the words held, weighted by rarity,
/// pass (twice the gain 485); after them the memory score (0.01) and the model's PMI (1.2) do
/// not, so the reranking is skipped. The memory score alone passes against BM25 alone (8.1;
/// 12.2 for run I, cb92c94ec015), but what it adds the words held already give. (For
/// cb92c94ec015 the fit gave BM25 0.3784 and words held 1.8417, for 8f80090d6ed8 0.3782 and
/// 1.8894, the memory and the PMI never significant after the words held.)
pub const FUSION: Fusion = Fusion {
    bm25: 0.3829,
    memory: 0.0,
    held: 1.8546,
    model: 0.0,
};

/// The start of the BLAKE3 of the weights [`FUSION`] was fitted for. With another model the
/// model's scores are uncalibrated, so they get no weight ([`fusion_for`]).
pub const FUSION_MODEL: &str = "d46c375d0251";

/// [`FUSION`] with no weight on the model's scores (memory and PMI): BM25 and the words held,
/// neither of which depends on the model, keep theirs.
pub const FUSION_WITHOUT_MODEL: Fusion = Fusion {
    memory: 0.0,
    model: 0.0,
    ..FUSION
};

/// The weights `options.fusion` stands for with `model`: itself, but for the shipped [`FUSION`]
/// without a model or with a model other than [`FUSION_MODEL`], where they are
/// [`FUSION_WITHOUT_MODEL`] (the memory's scores are still computed and shown in the citations;
/// the reranking is not run) until `memreader-eval --fit` is run for that model.
pub fn fusion_for(model: Option<&Model>, fusion: &Fusion) -> Fusion {
    let fitted = model.is_some_and(|m| m.weights_blake3().starts_with(FUSION_MODEL));
    if *fusion == FUSION && !fitted {
        FUSION_WITHOUT_MODEL
    } else {
        *fusion
    }
}

/// What is known of one candidate passage: each source's score, None where the source did not
/// score it (BM25 did not return it, the memory did not point at it, the model did not rerank it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// tantivy's BM25 score.
    pub bm25: Option<f32>,
    /// The memory score (summed attention lift above uniform).
    pub memory: Option<f32>,
    /// The question's distinct content words the passage holds, each weighted by its rarity
    /// among the candidates ([`words_held`]).
    pub held: Option<f32>,
    /// The question's PMI given the passage, nats summed over the tokens of the question's
    /// content words (the module docs, step 5).
    pub model: Option<f32>,
}

/// The first-stage score: BM25, memory and words held weighted by `w` (a missing score counts
/// as 0).
pub fn first_stage(e: &Evidence, w: &Fusion) -> f32 {
    w.bm25 * e.bm25.unwrap_or(0.0)
        + w.memory * e.memory.unwrap_or(0.0)
        + w.held * e.held.unwrap_or(0.0)
}

/// The final scores of candidates (higher is better): [`first_stage`] plus `w.model` times each
/// reranked candidate's PMI less the mean PMI of the reranked ones. Equal PMIs change nothing,
/// and a candidate without a PMI keeps its first-stage score.
pub fn fuse(evidence: &[Evidence], w: &Fusion) -> Vec<f32> {
    let pmis: Vec<f32> = evidence.iter().filter_map(|e| e.model).collect();
    let mean = if pmis.is_empty() {
        0.0
    } else {
        pmis.iter().sum::<f32>() / pmis.len() as f32
    };
    evidence
        .iter()
        .map(|e| first_stage(e, w) + e.model.map_or(0.0, |m| w.model * (m - mean)))
        .collect()
}

/// How to answer.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Only these documents (ids or unique prefixes); all when empty.
    pub docs: Vec<String>,
    /// BM25 candidates taken from the index (0: none, memory pointers only).
    pub bm25: usize,
    /// Passages taken from the memory pointers of each document (0: none, BM25 only).
    pub memory: usize,
    /// Candidates the model reranks (0: no reranking).
    pub rerank: usize,
    /// Citations in the answer.
    pub citations: usize,
    /// Generate an answer with the model (else always extract one).
    pub generate: bool,
    /// The most tokens of a generated answer.
    pub max_answer_tokens: usize,
    /// A generated answer is used only when its mean token log-probability reaches this.
    pub min_logprob: f32,
    /// How the scores are weighed ([`FUSION`]; see [`fusion_for`]).
    pub fusion: Fusion,
}

impl Default for AskOptions {
    fn default() -> AskOptions {
        AskOptions {
            docs: Vec::new(),
            bm25: 20,
            memory: 8,
            rerank: 5,
            citations: 3,
            generate: true,
            max_answer_tokens: 32,
            min_logprob: -1.0,
            fusion: FUSION,
        }
    }
}

/// A cited sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub doc_id: String,
    pub title: String,
    /// Page number from 1 (documents with pages).
    pub page: Option<usize>,
    /// Chapter index from 0, and its title.
    pub chapter: Option<usize>,
    pub chapter_title: Option<String>,
    /// The passage's char range in the document's text.
    pub passage: Range<usize>,
    /// The quoted sentence and its char range in the document's text.
    pub quote: String,
    pub range: Range<usize>,
    /// The final score (higher is better) and its parts.
    pub score: f32,
    pub bm25: Option<f32>,
    pub memory: Option<f32>,
    /// See [`Evidence::held`].
    pub held: Option<f32>,
    /// See [`Evidence::model`]: None where the model did not rerank the passage.
    pub model: Option<f32>,
}

impl Citation {
    /// "p. 3", "chapter 2: Title", both, or "no page or chapter".
    pub fn locator(&self) -> String {
        locator(self.page, self.chapter, self.chapter_title.as_deref())
    }
}

/// Where an answer's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerKind {
    /// Generated by the model after the best passage.
    Generated,
    /// The best passage's sentence that matches the question best.
    Extracted,
    /// Nothing in the documents matches the question.
    None,
}

/// An answer with its citations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    pub text: String,
    pub kind: AnswerKind,
    /// What the model generated (whether used or not) and its mean token log-probability.
    pub generated: Option<String>,
    pub confidence: Option<f32>,
    /// The answer's source first (the passage its text was extracted or generated from, whose
    /// score may be below the next citation's), then the best-ranked other candidates in rank
    /// order.
    pub citations: Vec<Citation>,
    /// What was left out and why (no model, documents without memory, ...).
    pub notices: Vec<String>,
}

/// What [`ask_with`] tells its caller while it answers, in order. After the last event, the text
/// of the last `Replace` (or "" before any) followed by the `Delta`s sent after it is the
/// answer's text. As JSON: `{"kind": "delta", "text": "..."}` or `{"kind": "replace", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "text", rename_all = "lowercase")]
pub enum AskEvent {
    /// The next piece of the answer's text as the model generates it: whole chars only (a char
    /// whose bytes are split over tokens waits for its last one), without the blanks that the
    /// answer is trimmed of.
    Delta(String),
    /// The answer's text is this instead of what was sent before: generation was abandoned for
    /// an extracted answer (not confident, or not in the passage), or nothing was generated
    /// (no model, generation off, nothing matched).
    Replace(String),
}

/// Sends a growing text to a listener: what was added since the last [`TextStream::show`] as
/// a `Delta`, or all of it as a `Replace` when it no longer begins with what was sent; then the
/// final text as a `Replace` unless it is what was sent.
struct TextStream<'a> {
    sent: String,
    on_event: &'a mut dyn FnMut(AskEvent),
}

impl<'a> TextStream<'a> {
    fn new(on_event: &'a mut dyn FnMut(AskEvent)) -> TextStream<'a> {
        TextStream {
            sent: String::new(),
            on_event,
        }
    }

    fn show(&mut self, text: &str) {
        match text.strip_prefix(self.sent.as_str()) {
            Some("") => {}
            Some(delta) => {
                (self.on_event)(AskEvent::Delta(delta.to_owned()));
                self.sent.push_str(delta);
            }
            None => {
                (self.on_event)(AskEvent::Replace(text.to_owned()));
                self.sent = text.to_owned();
            }
        }
    }

    fn finish(self, text: &str) {
        if self.sent != text {
            (self.on_event)(AskEvent::Replace(text.to_owned()));
        }
    }
}

/// The answer in a generation's decoded text: up to [`memmamba::prompt::ANSWER_END`], trimmed.
fn answer_text(decoded: &str) -> &str {
    decoded
        .split(memmamba::prompt::ANSWER_END)
        .next()
        .unwrap_or_default()
        .trim()
}

/// The part of a generation so far (`decoded`: all its tokens decoded) that its answer will
/// begin with whatever comes next: [`answer_text`] without a trailing U+FFFD (the first bytes of
/// a char whose last ones are still to come) and the blanks before it (the answer keeps them
/// only once something follows them).
fn settled(decoded: &str) -> &str {
    answer_text(decoded)
        .trim_end_matches(char::REPLACEMENT_CHARACTER)
        .trim_end()
}

/// A document's text and passages, as needed to cite it.
struct DocText {
    title: String,
    doc: Document,
    map: CharMap,
    passages: Vec<Passage>,
}

impl DocText {
    fn load(library: &Library, id: &str) -> Result<DocText> {
        let record = library.document(id)?;
        let doc = library.text(id)?;
        let passages = split_passages(&doc, id);
        Ok(DocText {
            title: record.display_title(),
            map: CharMap::new(&doc.text),
            doc,
            passages,
        })
    }

    /// The index of the passage that holds char `c` (or the next one, for a char between
    /// passages).
    fn passage_at(&self, c: usize) -> Option<usize> {
        let i = self.passages.partition_point(|p| p.range.end <= c);
        (i < self.passages.len()).then_some(i)
    }
}

/// A passage being ranked.
#[derive(Debug, Clone)]
struct Candidate {
    doc_id: String,
    passage: Range<usize>,
    page: Option<usize>,
    chapter: Option<usize>,
    chapter_title: Option<String>,
    bm25: Option<f32>,
    memory: Option<f32>,
    held: Option<f32>,
    model: Option<f32>,
}

impl Candidate {
    fn evidence(&self) -> Evidence {
        Evidence {
            bm25: self.bm25,
            memory: self.memory,
            held: self.held,
            model: self.model,
        }
    }
}

/// The ranked passages for a question and what was left out.
pub struct Ranking {
    candidates: Vec<(Candidate, f32)>,
    docs: HashMap<String, DocText>,
    notices: Vec<String>,
}

/// Asks `question` of the library: see the module docs. `model` is None when no model is
/// available (BM25 and extraction only).
pub fn ask(
    library: &Library,
    model: Option<&Model>,
    question: &str,
    options: &AskOptions,
) -> Result<Answer> {
    ask_with(library, model, question, options, &mut |_| {})
}

/// [`ask`], calling `on_event` with the answer's text as it is generated (see [`AskEvent`]).
///
/// ```no_run
/// use std::io::Write;
/// use memreader::ask::{ask_with, AskEvent, AskOptions};
/// # fn example(library: &memreader::library::Library) -> memreader::Result<()> {
/// let question = "Who hid the golden bird?";
/// let answer = ask_with(library, None, question, &AskOptions::default(), &mut |event| {
///     match event {
///         AskEvent::Delta(piece) => print!("{piece}"),
///         AskEvent::Replace(text) => print!("\n{text}"),
///     }
///     std::io::stdout().flush().ok();
/// })?;
/// println!("\n{} citations", answer.citations.len());
/// # Ok(())
/// # }
/// ```
pub fn ask_with(
    library: &Library,
    model: Option<&Model>,
    question: &str,
    options: &AskOptions,
    on_event: &mut dyn FnMut(AskEvent),
) -> Result<Answer> {
    let ranking = rank(library, model, question, options)?;
    let mut stream = TextStream::new(on_event);
    let answer = answer(model, question, ranking, options, &mut stream)?;
    stream.finish(&answer.text);
    Ok(answer)
}

/// The passages for `query`, best first, each cited by its best sentence: BM25 merged with the
/// memory pointers and, with `options.rerank`, reranked by the model (`memreader search
/// --memory`).
pub fn search(
    library: &Library,
    model: Option<&Model>,
    query: &str,
    options: &AskOptions,
    limit: usize,
) -> Result<(Vec<Citation>, Vec<String>)> {
    let ranking = rank(library, model, query, options)?;
    let words = question_words(query);
    let idf = idf_of(&ranking, &words);
    let cites = ranking
        .candidates
        .iter()
        .take(limit)
        .map(|(c, score)| cite(&ranking.docs, c, *score, &words, &idf))
        .collect();
    Ok((cites, ranking.notices))
}

fn rank(
    library: &Library,
    model: Option<&Model>,
    question: &str,
    options: &AskOptions,
) -> Result<Ranking> {
    let mut notices = Vec::new();
    let mut docs: HashMap<String, DocText> = HashMap::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let asked: Vec<String> = options
        .docs
        .iter()
        .map(|id| library.resolve(id))
        .collect::<std::result::Result<_, _>>()?;

    if options.bm25 > 0 {
        let hits = library.search(
            question,
            &SearchOptions {
                docs: asked.clone(),
                limit: options.bm25,
            },
        )?;
        for hit in hits {
            candidates.push(Candidate {
                doc_id: hit.doc_id,
                passage: hit.range,
                page: hit.page,
                chapter: hit.chapter,
                chapter_title: hit.chapter_title,
                bm25: Some(hit.score),
                memory: None,
                held: None,
                model: None,
            });
        }
    }

    if let Some(model) = model.filter(|_| options.memory > 0) {
        let mut targets: Vec<String> = if asked.is_empty() {
            let mut seen = HashSet::new();
            candidates
                .iter()
                .filter(|c| seen.insert(c.doc_id.clone()))
                .map(|c| c.doc_id.clone())
                .collect()
        } else {
            asked.clone()
        };
        if targets.is_empty() {
            targets = library
                .documents()?
                .into_iter()
                .filter(|r| r.status == Status::Ready)
                .map(|r| r.id)
                .filter(|id| matches!(memory::info(library, id), Ok(Some(_))))
                .take(16)
                .collect();
        }
        let mut unread = Vec::new();
        for id in targets {
            match memory::info(library, &id)? {
                Some(info) if info.weights_blake3 == model.weights_blake3() => {}
                _ => {
                    unread.push(id);
                    continue;
                }
            }
            let text = doc_text(library, &mut docs, &id)?;
            let pointed = match memory_pointers(library, model, &id, text, question) {
                Ok(pointed) => pointed,
                // Removed since the check above, by a reading that starts over.
                Err(Error::NotRead { .. }) => {
                    unread.push(id);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut best: Vec<(usize, f32)> = pointed.into_iter().collect();
            best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (i, score) in best.into_iter().take(options.memory) {
                let p = &text.passages[i];
                let found = candidates
                    .iter_mut()
                    .find(|c| c.doc_id == id && c.passage == p.range);
                match found {
                    Some(c) => c.memory = Some(score),
                    None => candidates.push(Candidate {
                        doc_id: id.clone(),
                        passage: p.range.clone(),
                        page: p.page.map(|n| n + 1),
                        chapter: p.chapter,
                        chapter_title: p
                            .chapter
                            .and_then(|c| text.doc.chapters.get(c))
                            .and_then(|c| c.title.clone()),
                        bm25: None,
                        memory: Some(score),
                        held: None,
                        model: None,
                    }),
                }
            }
        }
        if !unread.is_empty() {
            notices.push(format!(
                "{} document(s) have no memory from this model, so only BM25 ranks their \
                 passages (`memreader read` reads them)",
                unread.len()
            ));
        }
    }
    if model.is_none() {
        notices.push(
            "no model loaded: passages come from BM25 alone and the answer is extracted".to_owned(),
        );
    }

    let fusion = &fusion_for(model, &options.fusion);
    for c in &candidates {
        doc_text(library, &mut docs, &c.doc_id)?;
    }
    let passages: Vec<&str> = candidates
        .iter()
        .map(|c| {
            let text = &docs[&c.doc_id];
            text.map.slice(&text.doc.text, &c.passage)
        })
        .collect();
    let held = words_held(question, &passages);
    for (c, held) in candidates.iter_mut().zip(held) {
        c.held = Some(held);
    }
    let mut scored: Vec<(Candidate, f32)> = candidates
        .into_iter()
        .map(|c| {
            let s = first_stage(&c.evidence(), fusion);
            (c, s)
        })
        .collect();
    sort(&mut scored);
    // the reranking's forward passes are the costly part of an ask on a CPU: they run only
    // where the model's PMI has a weight
    let reranks = options.rerank > 0 && fusion.model != 0.0 && !scored.is_empty();
    if let Some(model) = model.filter(|_| reranks) {
        let prompt = QuestionTokens::new(model, question)?;
        if prompt.scored.iter().any(|&s| s) {
            let baseline = prompt.logprobs(model, &[])?;
            let words = question_words(question);
            for (c, _) in scored.iter_mut().take(options.rerank) {
                let text = doc_text(library, &mut docs, &c.doc_id)?;
                let window = rerank_window(text, &c.passage, &words);
                let mut context = model.encode(text.map.slice(&text.doc.text, &window))?;
                context.drain(..context.len().saturating_sub(RERANK_TOKENS));
                c.model = Some(pmi(&prompt.logprobs(model, &context)?, &baseline));
            }
            let evidence: Vec<Evidence> = scored.iter().map(|(c, _)| c.evidence()).collect();
            for ((_, score), fused) in scored.iter_mut().zip(fuse(&evidence, fusion)) {
                *score = fused;
            }
            sort(&mut scored);
        }
    }
    for (c, _) in &scored {
        doc_text(library, &mut docs, &c.doc_id)?;
    }
    Ok(Ranking {
        candidates: scored,
        docs,
        notices,
    })
}

/// The part of a passage the model reranks on: the sentence holding the most question words
/// (of equals the shortest) with the sentences before and after it.
fn rerank_window(text: &DocText, passage: &Range<usize>, words: &[String]) -> Range<usize> {
    let all = sentences(&text.map, &text.doc.text, passage);
    let best = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let have: HashSet<String> = content_words(text.map.slice(&text.doc.text, s))
                .into_iter()
                .collect();
            let n = words.iter().filter(|w| have.contains(*w)).count();
            (i, n, s.end - s.start)
        })
        .fold(
            None,
            |best: Option<(usize, usize, usize)>, cur| match best {
                Some(b) if b.1 > cur.1 || (b.1 == cur.1 && b.2 <= cur.2) => Some(b),
                _ => Some(cur),
            },
        );
    match best {
        Some((i, _, _)) => {
            let first = &all[i.saturating_sub(1)];
            let last = &all[(i + 1).min(all.len() - 1)];
            first.start..last.end
        }
        None => passage.clone(),
    }
}

/// Best first; of equal scores the one with more BM25, then more memory score, then the first.
fn sort(scored: &mut [(Candidate, f32)]) {
    let key = |s: Option<f32>| s.unwrap_or(f32::NEG_INFINITY);
    scored.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| key(b.0.bm25).total_cmp(&key(a.0.bm25)))
            .then_with(|| key(b.0.memory).total_cmp(&key(a.0.memory)))
            .then_with(|| a.0.doc_id.cmp(&b.0.doc_id))
            .then(a.0.passage.start.cmp(&b.0.passage.start))
    });
}

fn doc_text<'d>(
    library: &Library,
    docs: &'d mut HashMap<String, DocText>,
    id: &str,
) -> Result<&'d DocText> {
    if !docs.contains_key(id) {
        docs.insert(id.to_owned(), DocText::load(library, id)?);
    }
    Ok(&docs[id])
}

/// The passages of document `id` that its memory points at when the model reads the question
/// after it: passage index -> summed attention lift (see the module docs).
fn memory_pointers(
    library: &Library,
    model: &Model,
    id: &str,
    text: &DocText,
    question: &str,
) -> Result<HashMap<usize, f32>> {
    let mut state = memory::load(library, model, id)?.state;
    let offsets = memory::token_offsets(library, model, id, &text.doc)?;
    let prompt = model.encode(&question_prompt(question))?;
    if prompt.is_empty() {
        return Ok(HashMap::new());
    }
    model.read(&mut state, &prompt)?;
    let document_tokens = state.tokens_read() - prompt.len() as u64;
    let mut lists = Vec::new();
    for layer in 0..state.n_layer() {
        if let Some(att) = state.attention(layer) {
            lists.extend(att.token.first().cloned());
            lists.extend(att.cross.first().cloned());
        }
    }
    let reads = lists.iter().filter(|l| !l.is_empty()).count().max(1) as f32;
    let mut out: HashMap<usize, f32> = HashMap::new();
    for list in lists.iter().filter(|l| !l.is_empty()) {
        let uniform = 1.0 / list.len() as f32;
        for note in list {
            let lift = note.weight - uniform;
            // notes written while reading the question itself point at no passage
            if lift <= 0.0 || note.position >= document_tokens {
                continue;
            }
            let Some(&c) = offsets.get(note.position as usize) else {
                continue;
            };
            if let Some(p) = text.passage_at(c as usize) {
                *out.entry(p).or_default() += lift / reads;
            }
        }
    }
    Ok(out)
}

/// The question as the model reads it for reranking ([`question_prompt`]), and which of its
/// tokens the PMI sums over: those of the question's content words. The prompt's frame
/// ("Question:", "Answer:") and the question's function words ("where", "is", "it") read the
/// same after any passage, so their share of the PMI is noise around a constant.
struct QuestionTokens {
    ids: Vec<u32>,
    /// Per token of `ids`: whether it is part of a content word.
    scored: Vec<bool>,
}

impl QuestionTokens {
    fn new(model: &Model, question: &str) -> Result<QuestionTokens> {
        let prompt = question_prompt(question);
        let (ids, starts) = model.encode_document(&prompt)?;
        let map = CharMap::new(&prompt);
        let words = content_word_ranges(&prompt);
        let scored = (0..ids.len())
            .map(|t| {
                let start = map.byte_of_char(&prompt, starts[t] as usize);
                let end = starts
                    .get(t + 1)
                    .map_or(prompt.len(), |&c| map.byte_of_char(&prompt, c as usize));
                // the first token has no left context to be scored in
                t > 0 && words.iter().any(|(w, _)| w.start < end && start < w.end)
            })
            .collect();
        Ok(QuestionTokens { ids, scored })
    }

    /// `log p(token | context, the tokens before it)` of each scored token, in one pass.
    fn logprobs(&self, model: &Model, context: &[u32]) -> Result<Vec<f32>> {
        let mut ids = context.to_vec();
        ids.extend(&self.ids);
        let all = model.token_logprobs(&ids, context.len() + 1)?;
        // token_logprobs starts at the prompt's second token (the first is never scored)
        Ok(all
            .into_iter()
            .zip(self.scored.iter().skip(1))
            .filter(|(_, &s)| s)
            .map(|(lp, _)| lp)
            .collect())
    }
}

/// The PMI of the question's content words given a passage, in nats: their tokens' log-
/// probabilities after the passage less those without it (`baseline`).
fn pmi(after: &[f32], baseline: &[f32]) -> f32 {
    after.iter().zip(baseline).map(|(a, b)| a - b).sum()
}

/// The distinct content words of `question` ([`content_words`]) that each of `passages` holds,
/// each word weighted by how rare it is among them: `ln(1 + (n + 1) / (df + 1))` for a word
/// held by `df` of the `n` passages. A word that most candidates hold (a common one, such as
/// "said") tells them apart less than one that few hold; counting every word alike fitted the
/// dev questions worse (docs/EVAL.md).
pub fn words_held(question: &str, passages: &[&str]) -> Vec<f32> {
    let words = question_words(question);
    let held: Vec<Vec<bool>> = passages
        .iter()
        .map(|p| {
            let have: HashSet<String> = content_words(p).into_iter().collect();
            words.iter().map(|w| have.contains(w)).collect()
        })
        .collect();
    let n = passages.len() as f32;
    let weight: Vec<f32> = (0..words.len())
        .map(|i| {
            let df = held.iter().filter(|h| h[i]).count() as f32;
            (1.0 + (n + 1.0) / (df + 1.0)).ln()
        })
        .collect();
    held.iter()
        .map(|h| {
            h.iter()
                .zip(&weight)
                .filter(|(&on, _)| on)
                .map(|(_, w)| w)
                .sum()
        })
        .collect()
}

fn question_words(question: &str) -> Vec<String> {
    let mut words = content_words(question);
    let mut seen = HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    words
}

/// IDF of each question word over the sentences of all candidates.
fn idf_of(ranking: &Ranking, words: &[String]) -> HashMap<String, f32> {
    let mut df: HashMap<&str, usize> = HashMap::new();
    let mut n = 0usize;
    for (c, _) in &ranking.candidates {
        let text = &ranking.docs[&c.doc_id];
        for s in sentences(&text.map, &text.doc.text, &c.passage) {
            n += 1;
            let have: HashSet<String> = content_words(text.map.slice(&text.doc.text, &s))
                .into_iter()
                .collect();
            for w in words {
                if have.contains(w) {
                    *df.entry(w.as_str()).or_default() += 1;
                }
            }
        }
    }
    words
        .iter()
        .map(|w| {
            let d = df.get(w.as_str()).copied().unwrap_or(0) as f32;
            (w.clone(), (1.0 + (n as f32 + 1.0) / (d + 1.0)).ln())
        })
        .collect()
}

/// The sentence of the candidate's passage that matches the question words best (by summed
/// IDF; of equals the shortest, then the first), as a citation.
fn cite(
    docs: &HashMap<String, DocText>,
    c: &Candidate,
    score: f32,
    words: &[String],
    idf: &HashMap<String, f32>,
) -> Citation {
    best_sentence(docs, c, score, words, idf).0
}

/// [`cite`] and how well its sentence matches (summed IDF of the question words it has).
fn best_sentence(
    docs: &HashMap<String, DocText>,
    c: &Candidate,
    score: f32,
    words: &[String],
    idf: &HashMap<String, f32>,
) -> (Citation, f32) {
    let text = &docs[&c.doc_id];
    let mut best: Option<(f32, Range<usize>)> = None;
    for s in sentences(&text.map, &text.doc.text, &c.passage) {
        let have: HashSet<String> = content_words(text.map.slice(&text.doc.text, &s))
            .into_iter()
            .collect();
        let m: f32 = words
            .iter()
            .filter(|w| have.contains(*w))
            .map(|w| idf.get(w).copied().unwrap_or(0.0))
            .sum();
        let len = s.end - s.start;
        let better = best
            .as_ref()
            .is_none_or(|(b, r)| m > *b || (m == *b && len < r.end - r.start));
        if better {
            best = Some((m, s));
        }
    }
    let (matched, range) = best.unwrap_or((0.0, c.passage.clone()));
    (citation(text, c, score, range), matched)
}

fn citation(text: &DocText, c: &Candidate, score: f32, range: Range<usize>) -> Citation {
    Citation {
        doc_id: c.doc_id.clone(),
        title: text.title.clone(),
        page: c.page,
        chapter: c.chapter,
        chapter_title: c.chapter_title.clone(),
        passage: c.passage.clone(),
        quote: text.map.slice(&text.doc.text, &range).to_owned(),
        range,
        score,
        bm25: c.bm25,
        memory: c.memory,
        held: c.held,
        model: c.model,
    }
}

/// Lower-cased words of `s` joined by single spaces, for containment tests.
fn normalized(s: &str) -> String {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The answer from the ranked passages; a generation is shown on `stream` as it grows.
fn answer(
    model: Option<&Model>,
    question: &str,
    ranking: Ranking,
    options: &AskOptions,
    stream: &mut TextStream,
) -> Result<Answer> {
    let words = question_words(question);
    let idf = idf_of(&ranking, &words);
    // The answer comes from the best-matching sentence of the first EXTRACT_FROM passages
    // (the first of equals); its passage is cited first, the others follow in rank order.
    let mut cites: Vec<(Citation, f32)> = ranking
        .candidates
        .iter()
        .take(options.citations.max(EXTRACT_FROM))
        .map(|(c, score)| best_sentence(&ranking.docs, c, *score, &words, &idf))
        .collect();
    let source = cites
        .iter()
        .take(EXTRACT_FROM)
        .enumerate()
        .fold(None, |best: Option<(usize, f32, usize)>, (i, (c, m))| {
            let len = c.range.end - c.range.start;
            match best {
                Some((_, b, l)) if b > *m || (b == *m && l <= len) => best,
                _ => Some((i, *m, len)),
            }
        })
        .map_or(0, |(i, _, _)| i);
    if source < cites.len() {
        let first = cites.remove(source);
        cites.insert(0, first);
    }
    let citations: Vec<Citation> = cites
        .into_iter()
        .take(options.citations.max(1))
        .map(|(c, _)| c)
        .collect();
    let mut out = Answer {
        question: question.to_owned(),
        text: String::new(),
        kind: AnswerKind::None,
        generated: None,
        confidence: None,
        citations,
        notices: ranking.notices,
    };
    let Some(best) = out.citations.first() else {
        out.text = "Nothing in the documents matches the question.".to_owned();
        return Ok(out);
    };
    out.text = best.quote.clone();
    out.kind = AnswerKind::Extracted;
    let (Some(model), true) = (model, options.generate) else {
        return Ok(out);
    };
    let (candidate, score) = &ranking.candidates[source];
    let text = &ranking.docs[&candidate.doc_id];
    let passage_text = text.map.slice(&text.doc.text, &candidate.passage);
    let (generated, confidence) = generate(model, passage_text, question, options, stream)?;
    out.confidence = Some(confidence);
    let wanted = normalized(&generated);
    let found = !wanted.is_empty() && normalized(passage_text).contains(&wanted);
    if found && confidence >= options.min_logprob {
        out.kind = AnswerKind::Generated;
        out.text = generated.clone();
        // cite the sentence that holds the answer
        let holding = sentences(&text.map, &text.doc.text, &candidate.passage)
            .into_iter()
            .find(|s| normalized(text.map.slice(&text.doc.text, s)).contains(&wanted));
        if let Some(range) = holding {
            out.citations[0] = citation(text, candidate, *score, range);
        }
    }
    out.generated = Some(generated);
    Ok(out)
}

/// The tokens a generated answer may be made of: those of `passage` as it is tokenized in
/// place (`passage_ids`), those of each of its words after a space (an answer's first word follows "Answer:"
/// and a space, which can tokenize it otherwise than where the passage has it), and the
/// answer's end. An answer is only used when its words are the passage's, and the model errs
/// most at an answer's first token (docs/EVAL.md: it copies a number well once it has started
/// it, and it often starts it wrong), with a token the passage does not hold.
fn answer_vocabulary(model: &Model, passage: &str, passage_ids: &[u32]) -> Result<HashSet<u32>> {
    let mut allowed: HashSet<u32> = passage_ids.iter().copied().collect();
    let words: HashSet<&str> = passage.split_whitespace().collect();
    for word in words {
        allowed.extend(model.encode(&format!(" {word}"))?);
    }
    allowed.extend(model.encode(&memmamba::prompt::ANSWER_END.to_string())?);
    Ok(allowed)
}

/// Greedy decoding after the passage and the question prompt, among the passage's tokens
/// ([`answer_vocabulary`]), up to the first newline or `max_answer_tokens`; the answer's text
/// (shown on `stream` as it grows) and its mean token log-probability.
fn generate(
    model: &Model,
    passage: &str,
    question: &str,
    options: &AskOptions,
    stream: &mut TextStream,
) -> Result<(String, f32)> {
    let mut ids = model.encode(passage)?;
    let allowed = answer_vocabulary(model, passage, &ids)?;
    ids.extend(model.encode(&question_prompt(question))?);
    let mut state = model.new_state()?;
    let mut logprobs = model.read(&mut state, &ids)?;
    let mut out = Vec::new();
    let mut total = 0.0f32;
    for _ in 0..options.max_answer_tokens {
        let Some((t, lp)) = best_allowed(&logprobs, &allowed) else {
            break;
        };
        out.push(t);
        total += lp;
        let decoded = model.decode(&out)?;
        stream.show(settled(&decoded));
        if decoded.contains(memmamba::prompt::ANSWER_END) {
            break;
        }
        logprobs = model.read(&mut state, &[t])?;
    }
    let text = answer_text(&model.decode(&out)?).to_owned();
    stream.show(&text);
    let mean = if out.is_empty() {
        f32::NEG_INFINITY
    } else {
        total / out.len() as f32
    };
    Ok((text, mean))
}

/// The most likely token of `logprobs` among `allowed` and its log-probability (of equals the
/// lowest id); None when none is allowed.
fn best_allowed(logprobs: &[f32], allowed: &HashSet<u32>) -> Option<(u32, f32)> {
    allowed
        .iter()
        .filter_map(|&i| Some((i, *logprobs.get(i as usize)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// Where a passage is, for people: "p. 3", "chapter \"Title\"" (or "chapter 2" without a
/// title), both, or "no page or chapter". `chapter` counts from 0.
pub fn locator(page: Option<usize>, chapter: Option<usize>, chapter_title: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(page) = page {
        parts.push(format!("p. {page}"));
    }
    match (chapter_title, chapter) {
        (Some(title), _) => parts.push(format!("chapter {title:?}")),
        (None, Some(n)) => parts.push(format!("chapter {}", n + 1)),
        _ => {}
    }
    if parts.is_empty() {
        "no page or chapter".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::Tokenizer;

    #[test]
    fn decoding_takes_the_most_likely_token_the_passage_allows() {
        let logprobs = [-0.1, -3.0, -2.0, -2.0, -9.0];
        let allowed = |ids: &[u32]| ids.iter().copied().collect::<HashSet<u32>>();
        // token 0 is far more likely, but the passage does not hold it
        assert_eq!(
            best_allowed(&logprobs, &allowed(&[1, 2, 4])),
            Some((2, -2.0))
        );
        // of equals, the lower id
        assert_eq!(best_allowed(&logprobs, &allowed(&[3, 2])), Some((2, -2.0)));
        assert_eq!(best_allowed(&logprobs, &allowed(&[0, 1])), Some((0, -0.1)));
        // ids past the vocabulary are never chosen; nothing allowed ends the answer
        assert_eq!(best_allowed(&logprobs, &allowed(&[7])), None);
        assert_eq!(best_allowed(&logprobs, &allowed(&[])), None);
    }

    #[test]
    fn a_generation_streams_in_whole_chars_that_make_up_its_answer() {
        let tokenizer = Tokenizer::from_file(crate::assets_dir().join("tokenizer.json")).unwrap();
        let generated = " Ottoline Fairweather 🦉 of the café — naïve 北京  \nQuestion: who?";
        let ids = tokenizer
            .encode(generated, false)
            .unwrap()
            .get_ids()
            .to_vec();
        let decoded = |n: usize| tokenizer.decode(&ids[..n], false).unwrap();
        // byte-level tokens split some of these chars: a prefix of the tokens ends mid-char
        assert!((1..ids.len()).any(|n| decoded(n).ends_with(char::REPLACEMENT_CHARACTER)));

        // as `generate` streams: each token's prefix settled, then the whole answer
        let mut events = Vec::new();
        let mut on_event = |e| events.push(e);
        let mut stream = TextStream::new(&mut on_event);
        for n in 1..=ids.len() {
            stream.show(settled(&decoded(n)));
        }
        stream.show(answer_text(&decoded(ids.len())));
        let pieces: Vec<String> = events
            .into_iter()
            .map(|e| match e {
                AskEvent::Delta(piece) => piece,
                AskEvent::Replace(text) => panic!("nothing sent was taken back: {text:?}"),
            })
            .collect();
        assert!(pieces.len() > 5, "{pieces:?}");
        assert!(
            pieces
                .iter()
                .all(|p| !p.contains(char::REPLACEMENT_CHARACTER)),
            "{pieces:?}"
        );
        assert_eq!(
            pieces.concat(),
            "Ottoline Fairweather 🦉 of the café — naïve 北京"
        );
    }

    #[test]
    fn a_text_that_does_not_continue_what_was_sent_replaces_it() {
        let mut events = Vec::new();
        let mut on_event = |e| events.push(e);
        let mut stream = TextStream::new(&mut on_event);
        for text in ["The", "The", "The owl", "It was the barn owl.", ""] {
            stream.show(text);
        }
        stream.finish("The barn owl.");
        assert_eq!(
            events,
            [
                AskEvent::Delta("The".into()),
                AskEvent::Delta(" owl".into()),
                AskEvent::Replace("It was the barn owl.".into()),
                AskEvent::Replace("".into()),
                AskEvent::Replace("The barn owl.".into()),
            ]
        );
        // a final text that was all sent sends nothing more
        let mut sent = 0;
        let mut count = |_: AskEvent| sent += 1;
        let mut stream = TextStream::new(&mut count);
        stream.show("The barn owl.");
        stream.finish("The barn owl.");
        assert_eq!(sent, 1);
        // as the app's window receives them
        assert_eq!(
            serde_json::to_string(&events[1..3]).unwrap(),
            r#"[{"kind":"delta","text":" owl"},{"kind":"replace","text":"It was the barn owl."}]"#
        );
    }
}
