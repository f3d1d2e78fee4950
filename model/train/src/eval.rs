//! Model quality on held-out books (../shared/EVAL.md): perplexity against context length (the
//! PG19 protocol: score only the last tokens of each window) and pass-key retrieval at a grid
//! of lengths and depths. Both stream through a `MemoryState`, so memory stays flat however
//! long the context.

use candle_core::{DType, Tensor, D};
use memmamba::prompt::{question_prompt, ANSWER_END};
use memmamba::MemMamba;

use crate::rng::Rng;
use crate::tokenizer::BookTokenizer;
use crate::tokens::TokenStore;
use crate::TrainError;

/// Perplexity of the last `scored` tokens of windows of `context` tokens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PerplexityRow {
    pub context: usize,
    pub windows: usize,
    pub perplexity: f64,
}

/// Pass-key accuracy at one (length, depth) cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyCell {
    pub length: usize,
    pub depth: f64,
    pub trials: usize,
    pub correct: usize,
}

/// A window of `len` tokens lying inside one book, or `None` when no book is that long.
fn book_window(store: &TokenStore, len: usize, rng: &mut Rng) -> Option<Vec<u32>> {
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

fn row(tokens: &[u32], model: &MemMamba) -> Result<Tensor, TrainError> {
    Ok(Tensor::new(tokens, model.device())?.unsqueeze(0)?)
}

/// Negative log-likelihood of `target` under `logits` (1, vocab).
fn nll(logits: &Tensor, target: u32) -> Result<f64, TrainError> {
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    Ok(-(log_probs
        .squeeze(0)?
        .get(target as usize)?
        .to_scalar::<f32>()? as f64))
}

/// For each context length, `windows` windows (one book each; lengths no book reaches are
/// left out): the model reads the first `context - scored` tokens, then predicts the last
/// `scored` one by one.
pub fn perplexity_vs_context(
    model: &MemMamba,
    store: &TokenStore,
    contexts: &[usize],
    windows: usize,
    scored: usize,
    seed: u64,
) -> Result<Vec<PerplexityRow>, TrainError> {
    let mut rows = Vec::new();
    for &context in contexts.iter().filter(|&&c| c > scored) {
        let mut rng = Rng::for_step(seed, context as u64);
        let mut total = 0.0;
        let mut count = 0;
        for _ in 0..windows {
            let Some(window) = book_window(store, context, &mut rng) else {
                break;
            };
            let mut state = model.new_state(1)?;
            let split = context - scored;
            let mut logits = model.read(&mut state, &row(&window[..split], model)?)?;
            for &target in &window[split..] {
                total += nll(&logits, target)?;
                count += 1;
                logits = model.step(&mut state, &Tensor::new(&[target], model.device())?)?;
            }
        }
        if count > 0 {
            rows.push(PerplexityRow {
                context,
                windows: count / scored,
                perplexity: (total / count as f64).exp(),
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
        let next = logits
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?[0];
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

/// The pass-key grid: book text of each length with EVAL.md's pass-key sentence at each depth,
/// then the question; a trial is correct when the answer is exactly the five digits.
pub fn passkey_grid(
    model: &MemMamba,
    tokenizer: &BookTokenizer,
    store: &TokenStore,
    lengths: &[usize],
    depths: &[f64],
    trials: usize,
    seed: u64,
) -> Result<Vec<PasskeyCell>, TrainError> {
    let prompt = tokenizer.encode(&question_prompt("What is the pass key?"))?;
    let mut cells = Vec::new();
    for &length in lengths {
        for &depth in depths {
            let mut rng = Rng::for_step(seed, length as u64 ^ depth.to_bits());
            let mut correct = 0;
            let mut done = 0;
            for _ in 0..trials {
                let key = format!("{:05}", rng.below(100_000));
                let needle = tokenizer.encode(&format!(
                    " The pass key is {key}. Remember it. {key} is the pass key. "
                ))?;
                let text_len = length.saturating_sub(needle.len() + prompt.len());
                let Some(text) = book_window(store, text_len, &mut rng) else {
                    break;
                };
                let at = ((text_len as f64) * depth).round() as usize;
                let mut tokens = text[..at].to_vec();
                tokens.extend_from_slice(&needle);
                tokens.extend_from_slice(&text[at..]);
                tokens.extend_from_slice(&prompt);
                let mut state = model.new_state(1)?;
                let logits = model.read(&mut state, &row(&tokens, model)?)?;
                if greedy_answer(model, tokenizer, &mut state, logits, 8)? == key {
                    correct += 1;
                }
                done += 1;
            }
            cells.push(PasskeyCell {
                length,
                depth,
                trials: done,
                correct,
            });
        }
    }
    Ok(cells)
}
