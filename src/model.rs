//! The shipped model: a MemMamba network and the tokenizer it was trained with.
//!
//! A model directory holds `config.json` (a [`memmamba::Config`] as JSON) and
//! `model.safetensors` (its weights, any float dtype); `tokenizer.json` is taken from the
//! directory when it has one, else the bundled `assets/tokenizer.json`. The directory is
//! `--model DIR`, else `$MEMREADER_MODEL`, else the bundled `assets/model`.
//!
//! The BLAKE3 hashes of the weights file and of the tokenizer file identify the model: memories
//! and snapshots record them, and one made with other weights is refused.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmamba::{Config, Gating, MemMamba, MemoryState};
use tokenizers::Tokenizer;

use crate::error::{io, Error, Result};
use crate::text::CharMap;

/// The environment variable naming the model directory.
pub const MODEL_VARIABLE: &str = "MEMREADER_MODEL";
/// The config file of a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The tokenizer file of a model directory (optional there).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Text is tokenized in pieces of about this many bytes, cut before a space that follows a
/// word, where the byte-level pre-tokenizer would split anyway.
const PIECE_BYTES: usize = 1 << 16;

/// The model directory: `explicit` (`--model`), else `$MEMREADER_MODEL`, else the bundled
/// `assets/model`.
pub fn model_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_owned();
    }
    match std::env::var_os(MODEL_VARIABLE).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::assets_dir().join("model"),
    }
}

/// A loaded model: the network on its device, the tokenizer, and the hashes that identify them.
pub struct Model {
    net: MemMamba,
    tokenizer: Tokenizer,
    dir: PathBuf,
    weights_blake3: String,
    tokenizer_blake3: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("weights_blake3", &self.weights_blake3)
            .finish_non_exhaustive()
    }
}

fn bad(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::BadFile {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::ModelMissing {
                path: path.to_owned(),
            }
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

impl Model {
    /// Loads the model in `dir` onto `device` (see the module docs).
    pub fn load(dir: &Path, device: &Device) -> Result<Model> {
        let config_path = dir.join(CONFIG_FILE);
        let weights_path = dir.join(WEIGHTS_FILE);
        let config_json = read_file(&config_path)?;
        let config_json = String::from_utf8(config_json).map_err(|e| bad(&config_path, e))?;
        let cfg = Config::from_json_str(&config_json).map_err(|e| bad(&config_path, e))?;
        let weights = read_file(&weights_path)?;
        let net = MemMamba::weights_from_bytes(&cfg, &weights, device)
            .map_err(|e| bad(&weights_path, e))?;
        let weights_blake3 = blake3::hash(&weights).to_hex().to_string();
        drop(weights);

        let own = dir.join(TOKENIZER_FILE);
        let tokenizer_path = if own.exists() {
            own
        } else {
            crate::assets_dir().join(TOKENIZER_FILE)
        };
        let tokenizer_bytes = std::fs::read(&tokenizer_path).map_err(io(&tokenizer_path))?;
        let mut tokenizer =
            Tokenizer::from_bytes(&tokenizer_bytes).map_err(|e| bad(&tokenizer_path, e))?;
        // A book that contains the end-of-text marker's text reads it as ordinary text.
        tokenizer.set_encode_special_tokens(true);
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(bad(
                &config_path,
                format!(
                    "vocab_size {} is smaller than the tokenizer's {vocab} tokens ({})",
                    cfg.vocab_size,
                    tokenizer_path.display()
                ),
            ));
        }
        Ok(Model {
            net,
            tokenizer,
            dir: dir.to_owned(),
            weights_blake3,
            tokenizer_blake3: blake3::hash(&tokenizer_bytes).to_hex().to_string(),
        })
    }

    /// The network.
    pub fn net(&self) -> &MemMamba {
        &self.net
    }

    /// The network's configuration.
    pub fn config(&self) -> &Config {
        self.net.config()
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// BLAKE3 of the weights file, 64 hex digits.
    pub fn weights_blake3(&self) -> &str {
        &self.weights_blake3
    }

    /// BLAKE3 of the tokenizer file, 64 hex digits.
    pub fn tokenizer_blake3(&self) -> &str {
        &self.tokenizer_blake3
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        self.net.device()
    }

    /// A fresh reading state for one document.
    pub fn new_state(&self) -> Result<MemoryState> {
        Ok(self.net.new_state(1)?)
    }

    /// The token ids of `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The token ids of a whole document and, for each token, the char offset in `text` where
    /// it starts. Long texts are tokenized in pieces cut before a space that follows a word
    /// (where the byte-level pre-tokenizer splits anyway), so memory stays bounded.
    pub fn encode_document(&self, text: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let map = CharMap::new(text);
        if map.len_chars() > u32::MAX as usize {
            return Err(Error::Tokenizer(format!(
                "a text of {} chars is too long to read (the most is {})",
                map.len_chars(),
                u32::MAX
            )));
        }
        let (mut ids, mut starts) = (Vec::new(), Vec::new());
        let mut at = 0;
        while at < text.len() {
            let end = piece_end(text, at);
            let encoding = self
                .tokenizer
                .encode(&text[at..end], false)
                .map_err(|e| Error::Tokenizer(e.to_string()))?;
            let mut last = starts.last().copied().unwrap_or(0);
            for (&id, &(start, _)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
                // offsets are bytes of the piece; keep them monotone for the lookups
                let c = map.char_of_byte(text, at + start) as u32;
                last = last.max(c);
                ids.push(id);
                starts.push(last);
            }
            at = end;
        }
        Ok((ids, starts))
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Streams `ids` (at least one) through `state`; returns the log-probabilities of the next
    /// token (vocab,) on the CPU.
    pub fn read(&self, state: &mut MemoryState, ids: &[u32]) -> Result<Vec<f32>> {
        let tokens = Tensor::new(ids, self.device())?.unsqueeze(0)?;
        let logits = self.net.read(state, &tokens)?;
        log_softmax(&logits)
    }

    /// `log p(ids[t] | ids[..t])` for each `t` in `from..ids.len()` (`from` at least 1), read
    /// from a fresh state in one pass (as streaming them would, but with the logits of every
    /// position at once instead of one read per token).
    pub fn token_logprobs(&self, ids: &[u32], from: usize) -> Result<Vec<f32>> {
        let from = from.max(1);
        if from >= ids.len() {
            return Ok(Vec::new());
        }
        let tokens = Tensor::new(ids, self.device())?.unsqueeze(0)?;
        let logits = self.net.forward_gated(&tokens, Gating::Sparse)?;
        let rows = logits
            .squeeze(0)?
            .narrow(0, from - 1, ids.len() - from)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        Ok(rows
            .iter()
            .zip(&ids[from..])
            .map(|(row, &t)| {
                row.get(t as usize)
                    .map_or(f32::NEG_INFINITY, |x| x - log_sum_exp(row))
            })
            .collect())
    }
}

/// log_softmax of logits (1, vocab) as a vector on the CPU.
fn log_softmax(logits: &Tensor) -> Result<Vec<f32>> {
    let row = logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let norm = log_sum_exp(&row);
    Ok(row.into_iter().map(|x| x - norm).collect())
}

/// `ln(sum(exp(x)))` over `row`, computed without overflow.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

/// Where the piece of `text` that starts at byte `at` ends: about [`PIECE_BYTES`] later, just
/// before a space that follows a non-space char, else the end of the text.
fn piece_end(text: &str, at: usize) -> usize {
    if text.len() - at <= PIECE_BYTES {
        return text.len();
    }
    let bytes = text.as_bytes();
    (at + PIECE_BYTES..text.len())
        .find(|&i| bytes[i] == b' ' && !bytes[i - 1].is_ascii_whitespace() && bytes[i - 1] < 0x80)
        .unwrap_or(text.len())
}
