//! Model quality on held-out books (../shared/EVAL.md): perplexity against context length (the
//! PG19 protocol: score only the last tokens of each window), pass-key retrieval at a grid of
//! lengths and depths, multi-key retrieval (several keyed facts, one asked for) and recall of
//! real text (complete a quote from earlier in the book) at several distances. All stream
//! through a `MemoryState`, so memory stays flat however long the context; the synthetic
//! questions are training's own (`crate::tasks`) in the app's prompt format. Memory fidelity
//! (ETMF / ECLMF) is in [`crate::fidelity`], the plots in [`crate::plots`].

use candle_core::{DType, Tensor, D};
use memmamba::prompt::{question_prompt, ANSWER_END};
use memmamba::{Gating, MemMamba, Rng};

use crate::loss::log_probs;
use crate::tasks::{
    answer_tokens, fact_answer, five_digits, insert_needles, multikey, passkey, quote_question,
    Facts,
};
use crate::tokenizer::BookTokenizer;
use crate::tokens::TokenStore;
use crate::TrainError;

/// Perplexity of the last `scored` tokens of windows of `context` tokens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PerplexityRow {
    pub context: usize,
    pub windows: usize,
    pub perplexity: f64,
    /// The same loss per byte of the text scored, in bits: unlike the perplexity (per token),
    /// comparable between models whose tokenizers cut the text differently.
    pub bits_per_byte: f64,
}

/// The trials of one retrieval cell (pass key or multi-key).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    pub trials: usize,
    /// Trials whose greedy answer was exactly the expected one.
    pub correct: usize,
    /// Trials where the expected answer (teacher-forced, with its end) was more likely than a
    /// foil: another five-digit number, not stated in the text. Chance is half; a model that
    /// has begun to use the key in its context beats the foil long before it answers exactly.
    pub beats_foil: usize,
    /// Mean negative log-likelihood of the expected answer, in nats (a five-digit number
    /// guessed uniformly costs ln 10^5 = 11.5).
    pub answer_nll: f64,
    /// Wrong answers whose first token (the number's leading digits) was already wrong: where
    /// finding the fact fails, rather than copying it once found.
    pub wrong_first_token: usize,
    /// Mean number of the expected answer's leading characters (the key's digits) that the
    /// wrong answers had right before their first mistake: how much of the fact was found.
    pub wrong_leading_digits: f64,
    /// Mean number of layers whose summary pool, after the question was read, held a note
    /// written by a token of the asked fact's sentence: whether the memory kept the fact at
    /// all, apart from whether the model found it there (0 with notes off).
    pub layers_holding_fact: f64,
    /// For each character of the answer (the key's digits, first to last), the mean number of
    /// layers whose summary pool, after the question, held a note written by the token that
    /// states it (in any statement of the fact): which part of the fact the memory kept.
    pub layers_holding_digit: Vec<f64>,
    /// Mean share of the attention reads that the sparse gate skipped while reading (0 with
    /// soft gates or notes off).
    pub gate_skip_rate: f64,
}

impl Tally {
    fn add(&mut self, trial: &Trial) {
        let n = self.trials;
        self.answer_nll = mean_with(self.answer_nll, n, trial.answer_nll);
        self.layers_holding_fact =
            mean_with(self.layers_holding_fact, n, trial.layers_holding as f64);
        self.layers_holding_digit
            .resize(trial.layers_holding_digit.len(), 0.0);
        for (mean, &layers) in self
            .layers_holding_digit
            .iter_mut()
            .zip(&trial.layers_holding_digit)
        {
            *mean = mean_with(*mean, n, layers as f64);
        }
        self.gate_skip_rate = mean_with(self.gate_skip_rate, n, trial.gate_skip_rate);
        if !trial.exact {
            let wrong = self.trials - self.correct;
            self.wrong_leading_digits =
                mean_with(self.wrong_leading_digits, wrong, trial.leading_right as f64);
        }
        self.trials += 1;
        self.correct += usize::from(trial.exact);
        self.beats_foil += usize::from(trial.answer_nll < trial.foil_nll);
        self.wrong_first_token += usize::from(!trial.exact && !trial.first_token_right);
    }
}

/// The mean of `count` values that was `mean`, with `value` added.
fn mean_with(mean: f64, count: usize, value: f64) -> f64 {
    (mean * count as f64 + value) / (count + 1) as f64
}

/// How a retrieval trial reads: the ablations that show where an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Reading {
    /// The attention reads' gates: `Sparse` as the app reads, `Soft` as training does.
    pub gating: Gating,
    /// Zero the mixers' recurrent state just before the question, the pools kept, so that
    /// whatever the answer draws from the text can come only from the notes.
    pub pool_only: bool,
}

impl Default for Reading {
    fn default() -> Self {
        Reading {
            gating: Gating::Sparse,
            pool_only: false,
        }
    }
}

/// Pass-key retrieval at one (length, depth) cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyCell {
    pub length: usize,
    pub depth: f64,
    #[serde(flatten)]
    pub tally: Tally,
}

/// A window of `len` tokens lying inside one book, or `None` when no book is that long.
pub(crate) fn book_window(store: &TokenStore, len: usize, rng: &mut Rng) -> Option<Vec<u32>> {
    let long: Vec<_> = store.books.iter().filter(|b| b.len >= len).collect();
    if long.is_empty() {
        return None;
    }
    let book = long[rng.below(long.len())];
    let start = book.start + rng.below(book.len - len + 1);
    Some(
        store.tokens[start..start + len]
            .iter()
            .map(|&t| u32::from(t))
            .collect(),
    )
}

pub(crate) fn row(tokens: &[u32], model: &MemMamba) -> Result<Tensor, TrainError> {
    Ok(Tensor::new(tokens, model.device())?.unsqueeze(0)?)
}

/// Negative log-likelihood of `target` under `logits` (1, vocab).
fn nll(logits: &Tensor, target: u32) -> Result<f64, TrainError> {
    Ok(-(log_probs(logits)?
        .squeeze(0)?
        .get(target as usize)?
        .to_scalar::<f32>()? as f64))
}

/// Perplexity against context, the PG19 way: `windows` windows (one book each) of the longest
/// context some book reaches (longer ones are left out), whose last `scored` tokens are
/// predicted one by one after reading the `context - scored` tokens before them, for each
/// context. Every context scores the same tokens, so the rows differ only in how much of the
/// text before them the model has read.
pub fn perplexity_vs_context(
    model: &MemMamba,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    contexts: &[usize],
    windows: usize,
    scored: usize,
    seed: u64,
) -> Result<Vec<PerplexityRow>, TrainError> {
    let longest_book = store.books.iter().map(|b| b.len).max().unwrap_or(0);
    let contexts: Vec<usize> = contexts
        .iter()
        .copied()
        .filter(|&c| c > scored && c <= longest_book)
        .collect();
    let Some(&longest) = contexts.iter().max() else {
        return Ok(Vec::new());
    };
    let mut rng = Rng::for_step(seed, longest as u64);
    let drawn: Vec<Vec<u32>> = (0..windows)
        .map_while(|_| book_window(store, longest, &mut rng))
        .collect();
    let bytes_per_token = tokenizer.bytes_per_token();
    let mut rows = Vec::new();
    for &context in &contexts {
        let mut total = 0.0;
        let (mut count, mut bytes) = (0, 0);
        for window in &drawn {
            let window = &window[longest - context..];
            let mut state = model.new_state(1)?;
            let split = context - scored;
            let mut logits = model.read(&mut state, &row(&window[..split], model)?)?;
            for &target in &window[split..] {
                total += nll(&logits, target)?;
                count += 1;
                bytes += bytes_per_token.get(target as usize).copied().unwrap_or(0);
                logits = model.step(&mut state, &Tensor::new(&[target], model.device())?)?;
            }
        }
        if count > 0 {
            rows.push(PerplexityRow {
                context,
                windows: count / scored,
                perplexity: (total / count as f64).exp(),
                bits_per_byte: total / std::f64::consts::LN_2 / bytes.max(1) as f64,
            });
        }
    }
    Ok(rows)
}

/// Greedy answer after `prompt` has been read: at most `max_tokens`, up to the answer's end.
pub fn greedy_answer(
    model: &MemMamba,
    tokenizer: &BookTokenizer,
    state: &mut memmamba::MemoryState,
    mut logits: Tensor,
    max_tokens: usize,
) -> Result<String, TrainError> {
    let mut ids = Vec::new();
    for _ in 0..max_tokens {
        let next = argmax(&logits)?;
        ids.push(next);
        if tokenizer.decode(&ids)?.contains(ANSWER_END) {
            break;
        }
        logits = model.step(state, &Tensor::new(&[next], model.device())?)?;
    }
    let text = tokenizer.decode(&ids)?;
    Ok(text
        .split(ANSWER_END)
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Multi-key retrieval at one (length, key count) cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MultikeyCell {
    pub length: usize,
    pub keys: usize,
    #[serde(flatten)]
    pub tally: Tally,
}

/// Recall of real text at one distance between the quote and the question.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecallRow {
    pub distance: usize,
    pub trials: usize,
    /// Trials whose whole continuation (and the answer's end) was the greedy choice, i.e.
    /// greedy decoding would have answered exactly the continuation.
    pub exact: usize,
    /// Continuation tokens (answer end included) that were the greedy choice, over all trials.
    pub tokens_correct: usize,
    pub tokens: usize,
}

/// The trial count for the `i`th length: `trials` holds one count for all lengths or one per
/// length.
pub fn trials_for(trials: &[usize], i: usize) -> usize {
    match trials {
        [] => 0,
        [all] => *all,
        each => each.get(i).copied().unwrap_or(0),
    }
}

/// What one retrieval trial found.
struct Trial {
    exact: bool,
    first_token_right: bool,
    /// Leading characters of the greedy answer that match the expected one.
    leading_right: usize,
    answer_nll: f64,
    foil_nll: f64,
    /// Layers whose pool held a note of the asked fact after the question.
    layers_holding: usize,
    /// For each character of the answer, the layers holding a note written by its token.
    layers_holding_digit: Vec<usize>,
    gate_skip_rate: f64,
}

/// One retrieval trial: `facts` inserted at `depths` (fractions of the text, ascending) of a
/// book window, the question after it, `length` tokens in all: the greedy answer, and the
/// likelihoods of the expected answer and of a foil, read as `reading` says. `None` when no book
/// holds the text.
#[allow(clippy::too_many_arguments)]
fn retrieval_trial(
    model: &MemMamba,
    reading: Reading,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    length: usize,
    facts: &Facts,
    depths: &[f64],
    rng: &mut Rng,
) -> Result<Option<Trial>, TrainError> {
    let prompt = tokenizer.encode(&question_prompt(&facts.question))?;
    let needles = facts
        .facts
        .iter()
        .map(|f| tokenizer.encode(f))
        .collect::<Result<Vec<_>, _>>()?;
    let fixed = prompt.len() + needles.iter().map(Vec::len).sum::<usize>();
    let text_len = length.saturating_sub(fixed);
    let Some(text) = book_window(store, text_len, rng) else {
        return Ok(None);
    };
    let at: Vec<usize> = depths
        .iter()
        .map(|d| ((text_len as f64) * d).round() as usize)
        .collect();
    let tokens = insert_needles(&text, &needles, &at);
    // Needle i starts at its depth in the text plus the needles inserted before it.
    let asked_from = at[facts.asked] + needles[..facts.asked].iter().map(Vec::len).sum::<usize>();
    let asked_span = asked_from as u64..(asked_from + needles[facts.asked].len()) as u64;
    let mut state = model.new_state(1)?.with_gating(reading.gating);
    model.read(&mut state, &row(&tokens, model)?)?;
    if reading.pool_only {
        state.forget_recurrence(&[true])?;
    }
    let logits = model.read(&mut state, &row(&prompt, model)?)?;
    let gate_skip_rate = state.skip_rate().unwrap_or(0.0);
    let held: Vec<Vec<u64>> = (0..state.n_layer())
        .map(|layer| {
            state.pool_slots(layer, 0).map_or_else(Vec::new, |slots| {
                slots
                    .iter()
                    .filter(|s| s.valid)
                    .map(|s| s.position)
                    .collect()
            })
        })
        .collect();
    let layers_holding = held
        .iter()
        .filter(|positions| positions.iter().any(|p| asked_span.contains(p)))
        .count();
    let layers_holding_digit = answer_char_tokens(tokenizer, &needles[facts.asked], &facts.answer)?
        .iter()
        .map(|tokens| {
            held.iter()
                .filter(|positions| {
                    tokens
                        .iter()
                        .any(|&t| positions.contains(&((asked_from + t) as u64)))
                })
                .count()
        })
        .collect();
    // The foil comes from its own generator, so the trials drawn stay those of `rng`.
    let foil = foil_for(&facts.answer);
    let expected = answer_tokens(tokenizer, &fact_answer(&facts.answer))?;
    let score = |answer: &[u32]| answer_nll(model, &mut state.clone(), logits.clone(), answer);
    let foil = answer_tokens(tokenizer, &fact_answer(&foil))?;
    let (answer_nll, foil_nll) = (score(&expected)?, score(&foil)?);
    let first_token_right = expected.first() == Some(&argmax(&logits)?);
    let answer = greedy_answer(model, tokenizer, &mut state, logits, 8)?;
    Ok(Some(Trial {
        exact: answer == facts.answer,
        first_token_right,
        leading_right: leading_chars_right(&answer, &facts.answer),
        answer_nll,
        foil_nll,
        layers_holding,
        layers_holding_digit,
        gate_skip_rate,
    }))
}

/// For each character of `answer`, the indices of the tokens of `needle` that state it, one per
/// statement of the answer in the needle's text.
fn answer_char_tokens(
    tokenizer: &BookTokenizer,
    needle: &[u32],
    answer: &str,
) -> Result<Vec<Vec<usize>>, TrainError> {
    // ends[i]: the length of the text of the needle's first i + 1 tokens.
    let ends = (1..=needle.len())
        .map(|n| Ok(tokenizer.decode(&needle[..n])?.len()))
        .collect::<Result<Vec<_>, TrainError>>()?;
    let text = tokenizer.decode(needle)?;
    let mut tokens = vec![Vec::new(); answer.len()];
    for (start, _) in text.match_indices(answer) {
        for (i, of_char) in tokens.iter_mut().enumerate() {
            of_char.push(ends.partition_point(|&end| end <= start + i));
        }
    }
    Ok(tokens)
}

/// How many of `expected`'s leading characters `answer` has right before its first mistake.
fn leading_chars_right(answer: &str, expected: &str) -> usize {
    answer
        .chars()
        .zip(expected.chars())
        .take_while(|(a, e)| a == e)
        .count()
}

/// A five-digit number other than `answer`, drawn from a generator seeded by the answer.
fn foil_for(answer: &str) -> String {
    let seed = answer
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
    let mut rng = Rng::for_step(seed, 0xF011);
    loop {
        let foil = five_digits(&mut rng);
        if foil != answer {
            return foil;
        }
    }
}

/// Negative log-likelihood of `answer`'s tokens read one by one after `logits`, the model's
/// prediction after the prompt (teacher forcing).
fn answer_nll(
    model: &MemMamba,
    state: &mut memmamba::MemoryState,
    mut logits: Tensor,
    answer: &[u32],
) -> Result<f64, TrainError> {
    let mut total = 0.0;
    for (i, &target) in answer.iter().enumerate() {
        total += nll(&logits, target)?;
        if i + 1 < answer.len() {
            logits = model.step(state, &Tensor::new(&[target], model.device())?)?;
        }
    }
    Ok(total)
}

/// The pass-key grid: book text of each length with EVAL.md's pass-key sentence (training's
/// pass-key task) at each depth, then the question; a trial is correct when the answer is
/// exactly the five digits. `trials`: one count for every length, or one per length.
#[allow(clippy::too_many_arguments)]
pub fn passkey_grid(
    model: &MemMamba,
    reading: Reading,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    lengths: &[usize],
    depths: &[f64],
    trials: &[usize],
    seed: u64,
) -> Result<Vec<PasskeyCell>, TrainError> {
    let mut cells = Vec::new();
    for (i, &length) in lengths.iter().enumerate() {
        for &depth in depths {
            let mut rng = Rng::for_step(seed, length as u64 ^ depth.to_bits());
            let mut tally = Tally::default();
            for _ in 0..trials_for(trials, i) {
                let facts = passkey(&mut rng);
                let trial = retrieval_trial(
                    model,
                    reading,
                    tokenizer,
                    store,
                    length,
                    &facts,
                    &[depth],
                    &mut rng,
                )?;
                let Some(trial) = trial else { break };
                tally.add(&trial);
            }
            cells.push(PasskeyCell {
                length,
                depth,
                tally,
            });
        }
    }
    Ok(cells)
}

/// Multi-key retrieval: `keys` facts of training's multi-key task (at most 24) at uniformly
/// random depths of book text of each length, one of them asked for; correct when the answer
/// is exactly its five-digit number.
#[allow(clippy::too_many_arguments)]
pub fn multikey_grid(
    model: &MemMamba,
    reading: Reading,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    lengths: &[usize],
    keys: &[usize],
    trials: usize,
    seed: u64,
) -> Result<Vec<MultikeyCell>, TrainError> {
    let mut cells = Vec::new();
    for &length in lengths {
        for &count in keys {
            let mut rng = Rng::for_step(seed, ((length as u64) << 8) ^ count as u64);
            let (mut tally, mut stated) = (Tally::default(), count);
            for _ in 0..trials {
                let facts = multikey(count, &mut rng);
                stated = facts.facts.len();
                let mut depths: Vec<f64> = facts.facts.iter().map(|_| rng.unit()).collect();
                depths.sort_by(f64::total_cmp);
                let trial = retrieval_trial(
                    model, reading, tokenizer, store, length, &facts, &depths, &mut rng,
                )?;
                let Some(trial) = trial else { break };
                tally.add(&trial);
            }
            cells.push(MultikeyCell {
                length,
                keys: stated,
                tally,
            });
        }
    }
    Ok(cells)
}

/// Tokens of the book read before the quote in [`recall_vs_distance`].
pub const RECALL_LEAD: usize = 256;
/// Length of a quote in tokens (training's recall task uses 24): half is given, half asked for.
pub const QUOTE_TOKENS: usize = 24;

/// Recall of real text: the model reads [`RECALL_LEAD`] tokens of a book, a passage of
/// [`QUOTE_TOKENS`] tokens starting at a sentence, then `distance` more tokens of the same
/// book, then training's recall question (the first half of the passage, "continue the
/// quote"). The continuation is scored token by token, each token fed after the model's
/// prediction of it: exact match when every token of it and the answer's end were the
/// greedy choice (what greedy decoding would have answered).
pub fn recall_vs_distance(
    model: &MemMamba,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    distances: &[usize],
    trials: usize,
    seed: u64,
) -> Result<Vec<RecallRow>, TrainError> {
    const SLACK: usize = 64;
    let mut rows = Vec::new();
    for &distance in distances {
        let mut rng = Rng::for_step(seed, distance as u64);
        let mut out = RecallRow {
            distance,
            trials: 0,
            exact: 0,
            tokens_correct: 0,
            tokens: 0,
        };
        for _ in 0..trials {
            let len = RECALL_LEAD + SLACK + QUOTE_TOKENS + distance;
            let Some(text) = book_window(store, len, &mut rng) else {
                break;
            };
            let at = sentence_start(tokenizer, &text, RECALL_LEAD, RECALL_LEAD + SLACK)?;
            let quote_end = at + QUOTE_TOKENS;
            let (question, rest) = quote_question(tokenizer, &text[at..quote_end])?;
            let mut tokens = text[..quote_end + distance].to_vec();
            tokens.extend(tokenizer.encode(&question_prompt(&question))?);
            let answer = answer_tokens(tokenizer, &rest)?;
            let mut state = model.new_state(1)?;
            let mut logits = model.read(&mut state, &row(&tokens, model)?)?;
            let mut right = 0;
            for (i, &target) in answer.iter().enumerate() {
                right += usize::from(argmax(&logits)? == target);
                if i + 1 < answer.len() {
                    logits = model.step(&mut state, &Tensor::new(&[target], model.device())?)?;
                }
            }
            out.trials += 1;
            out.exact += usize::from(right == answer.len());
            out.tokens_correct += right;
            out.tokens += answer.len();
        }
        rows.push(out);
    }
    Ok(rows)
}

/// The greedy token of `logits` (1, vocab).
fn argmax(logits: &Tensor) -> Result<u32, TrainError> {
    Ok(logits
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_vec1::<u32>()?[0])
}

/// The first position in `from..to` that follows a token ending a sentence (`.`, `!` or `?`,
/// possibly before a closing quote), or `from` when there is none.
fn sentence_start(
    tokenizer: &BookTokenizer,
    text: &[u32],
    from: usize,
    to: usize,
) -> Result<usize, TrainError> {
    for at in from.max(1)..to.min(text.len()) {
        let before = tokenizer.decode(&text[at - 1..at])?;
        let end = before
            .trim_end()
            .trim_end_matches(['"', '\'', '\u{201d}', '\u{2019}']);
        if end.ends_with(['.', '!', '?']) {
            return Ok(at);
        }
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(answer: &str) -> Trial {
        Trial {
            exact: answer == "12345",
            first_token_right: answer.starts_with('1'),
            leading_right: leading_chars_right(answer, "12345"),
            answer_nll: 1.0,
            foil_nll: 2.0,
            layers_holding: 0,
            layers_holding_digit: vec![0; 5],
            gate_skip_rate: 0.0,
        }
    }

    #[test]
    fn an_answer_has_its_leading_digits_right_up_to_its_first_mistake() {
        assert_eq!(leading_chars_right("12395", "12345"), 3);
        assert_eq!(leading_chars_right("12345", "12345"), 5);
        assert_eq!(leading_chars_right("1234", "12345"), 4);
        assert_eq!(leading_chars_right("52345", "12345"), 0);
        assert_eq!(leading_chars_right("", "12345"), 0);
    }

    #[test]
    fn the_leading_digits_are_averaged_over_the_wrong_answers_only() {
        let mut tally = Tally::default();
        for answer in ["12345", "12399", "12345", "19999", "99999"] {
            tally.add(&trial(answer));
        }
        assert_eq!((tally.trials, tally.correct), (5, 2));
        assert_eq!(tally.wrong_first_token, 1);
        // The three wrong answers had 3, 1 and 0 digits right before their first mistake.
        assert!((tally.wrong_leading_digits - 4.0 / 3.0).abs() < 1e-12);
    }
}
