//! Training samples: windows of book text for language modelling, and the synthetic long-range
//! tasks that teach the memory what the app asks of it, written in the app's question format
//! (`memmamba::prompt`): a pass key hidden in a book, several keyed facts of which one is asked
//! for, and the completion of a sentence quoted from earlier in the text.

use memmamba::prompt::{question_prompt, ANSWER_END};

use crate::tokenizer::BookTokenizer;
use crate::tokens::TokenStore;
use crate::TrainError;
use memmamba::Rng;

/// How often each kind of sample is drawn; the rest is plain language modelling.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TaskMix {
    pub passkey: f64,
    pub multikey: f64,
    pub recall: f64,
    /// Loss weight of answer tokens relative to text tokens.
    pub answer_weight: f32,
}

impl Default for TaskMix {
    fn default() -> Self {
        TaskMix {
            passkey: 0.1,
            multikey: 0.1,
            recall: 0.1,
            answer_weight: 5.0,
        }
    }
}

/// One training sample: `len + 1` tokens (inputs are `tokens[..len]`, targets
/// `tokens[1..]`) and one loss weight per target. Training may read it as several sequences
/// with the memory carried from one to the next ([`crate::trainer::Carry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub tokens: Vec<u32>,
    pub weights: Vec<f32>,
    /// At each boundary between two of its sequences, whether the mixers' recurrent state is
    /// zeroed there (the pools kept); empty when it is read as one sequence.
    pub forget_recurrence: Vec<bool>,
}

/// Keys of the multi-key task: distinct, short, ordinary English.
const KEY_NAMES: [&str; 24] = [
    "the red fox",
    "the old mill",
    "the blue door",
    "the north tower",
    "the silver cup",
    "the green lamp",
    "the iron gate",
    "the quiet harbour",
    "the tall elm",
    "the black horse",
    "the winter garden",
    "the stone bridge",
    "the copper kettle",
    "the white owl",
    "the river inn",
    "the brass key",
    "the hidden well",
    "the yellow kite",
    "the east road",
    "the little chapel",
    "the painted box",
    "the broken clock",
    "the high meadow",
    "the lost ring",
];

pub(crate) fn five_digits(rng: &mut Rng) -> String {
    format!("{:05}", rng.below(100_000))
}

/// Draws one sample of `len + 1` tokens according to `mix`.
pub fn draw_sample(
    store: &TokenStore,
    tokenizer: &BookTokenizer,
    mix: &TaskMix,
    len: usize,
    rng: &mut Rng,
) -> Result<Sample, TrainError> {
    let roll = rng.unit();
    let task = if roll < mix.passkey {
        Some(Task::Facts(passkey(rng)))
    } else if roll < mix.passkey + mix.multikey {
        let count = 2 + rng.below(7);
        Some(Task::Facts(multikey(count, rng)))
    } else if roll < mix.passkey + mix.multikey + mix.recall {
        Some(Task::Recall)
    } else {
        None
    };
    let plain = |rng: &mut Rng| Sample {
        tokens: window(store, len + 1, rng),
        weights: vec![1.0; len],
        forget_recurrence: Vec::new(),
    };
    let Some(task) = task else {
        return Ok(plain(rng));
    };
    let Facts {
        facts,
        question,
        answer,
        ..
    } = match task {
        Task::Facts(facts) => facts,
        Task::Recall => {
            // The quote is taken from the text the sample itself contains, early on, so the
            // answer lies far behind the question.
            let text = window(store, len + 1, rng);
            let quote_len = 24.min(len / 4);
            let reach = (len / 2).saturating_sub(quote_len);
            if quote_len < 8 || reach == 0 {
                return Ok(plain(rng));
            }
            let at = rng.below(reach);
            let (question, rest) = quote_question(tokenizer, &text[at..at + quote_len])?;
            return assemble(tokenizer, mix, len, text, Vec::new(), &question, &rest, rng)
                .map(|s| s.unwrap_or_else(|| plain(rng)));
        }
    };
    let text = window(store, len + 1, rng);
    let needles = facts
        .iter()
        .map(|f| tokenizer.encode(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(assemble(
        tokenizer,
        mix,
        len,
        text,
        needles,
        &question,
        &fact_answer(&answer),
        rng,
    )?
    .unwrap_or_else(|| plain(rng)))
}

/// How the text of a fact's `value` follows the prompt: after a space, as in the sentence that
/// states it.
pub(crate) fn fact_answer(value: &str) -> String {
    format!(" {value}")
}

/// The tokens a sample ends with after its prompt: `text`, then the answer's end.
pub(crate) fn answer_tokens(tokenizer: &BookTokenizer, text: &str) -> Result<Vec<u32>, TrainError> {
    tokenizer.encode(&format!("{text}{ANSWER_END}"))
}

/// Facts to hide in a text, the question that asks for one of them, and its answer (shared by
/// training and the evaluation, `crate::eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub facts: Vec<String>,
    pub question: String,
    pub answer: String,
    /// Which of `facts` the question asks for.
    pub asked: usize,
}

enum Task {
    Facts(Facts),
    Recall,
}

/// The pass-key task: one five-digit key stated twice, then asked for.
pub fn passkey(rng: &mut Rng) -> Facts {
    let key = five_digits(rng);
    Facts {
        facts: vec![format!(
            " The pass key is {key}. Remember it. {key} is the pass key. "
        )],
        question: "What is the pass key?".to_string(),
        answer: key,
        asked: 0,
    }
}

/// The multi-key task: `count` (at most 24) distinct keys with a five-digit secret number each,
/// one of which is asked for.
pub fn multikey(count: usize, rng: &mut Rng) -> Facts {
    let mut names: Vec<&str> = KEY_NAMES.to_vec();
    let mut facts = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    for _ in 0..count.min(KEY_NAMES.len()) {
        let name = names.swap_remove(rng.below(names.len()));
        let value = five_digits(rng);
        facts.push(format!(" The secret number of {name} is {value}. "));
        values.push((name, value));
    }
    let asked = rng.below(values.len());
    let (name, value) = values.swap_remove(asked);
    Facts {
        facts,
        question: format!("What is the secret number of {name}?"),
        answer: value,
        asked,
    }
}

/// The recall task for `quote` (tokens of the text): the question gives its first half and asks
/// for the rest; returns the question and the expected continuation (its second half's text).
pub fn quote_question(
    tokenizer: &BookTokenizer,
    quote: &[u32],
) -> Result<(String, String), TrainError> {
    let half = quote.len() / 2;
    let cue = tokenizer.decode(&quote[..half])?;
    let rest = tokenizer.decode(&quote[half..])?;
    Ok((
        format!("Continue the quote: \"{}\"", cue.trim_start()),
        rest,
    ))
}

/// `n` consecutive tokens of the stream from a random start (books follow each other,
/// separated by the end-of-text marker).
fn window(store: &TokenStore, n: usize, rng: &mut Rng) -> Vec<u32> {
    let total = store.tokens.len();
    let start = rng.below(total.saturating_sub(n).max(1));
    (0..n)
        .map(|i| u32::from(store.tokens[(start + i) % total]))
        .collect()
}

/// Text with `needles` inserted at random depths, then the question and the answer, cut to
/// `len + 1` tokens by shortening the text. `None` when `len` is too short to hold it.
#[allow(clippy::too_many_arguments)]
fn assemble(
    tokenizer: &BookTokenizer,
    mix: &TaskMix,
    len: usize,
    text: Vec<u32>,
    needles: Vec<Vec<u32>>,
    question: &str,
    answer: &str,
    rng: &mut Rng,
) -> Result<Option<Sample>, TrainError> {
    let prompt = tokenizer.encode(&question_prompt(question))?;
    let answer = answer_tokens(tokenizer, answer)?;
    let fixed: usize = prompt.len() + answer.len() + needles.iter().map(Vec::len).sum::<usize>();
    if fixed + 16 > len + 1 {
        return Ok(None);
    }
    let mut haystack = text;
    haystack.truncate(len + 1 - fixed);
    let mut depths: Vec<usize> = needles
        .iter()
        .map(|_| rng.below(haystack.len() + 1))
        .collect();
    depths.sort_unstable();
    let mut tokens = insert_needles(&haystack, &needles, &depths);
    tokens.extend_from_slice(&prompt);
    let answer_from = tokens.len();
    tokens.extend_from_slice(&answer);
    // Target i predicts tokens[i + 1]: answer tokens are targets answer_from - 1 ...
    let mut weights = vec![1.0; len];
    for w in &mut weights[answer_from - 1..] {
        *w = mix.answer_weight;
    }
    Ok(Some(Sample {
        tokens,
        weights,
        forget_recurrence: Vec::new(),
    }))
}

/// `haystack` with each needle inserted before the token at its depth (`depths` ascending,
/// at most `haystack.len()`).
pub fn insert_needles(haystack: &[u32], needles: &[Vec<u32>], depths: &[usize]) -> Vec<u32> {
    let mut tokens =
        Vec::with_capacity(haystack.len() + needles.iter().map(Vec::len).sum::<usize>());
    let mut from = 0;
    for (needle, &depth) in needles.iter().zip(depths) {
        tokens.extend_from_slice(&haystack[from..depth]);
        tokens.extend_from_slice(needle);
        from = depth;
    }
    tokens.extend_from_slice(&haystack[from..]);
    tokens
}
