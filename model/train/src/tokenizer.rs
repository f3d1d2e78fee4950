//! The shipped tokenizer: byte-level BPE (GPT-2 style), so every string encodes and decodes
//! back byte for byte, with one special token that separates documents.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::TrainError;

/// Marks the end of a document in a training stream; always id 0.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The GPT-2-style pre-tokenization the shipped tokenizer was trained with: no space added
/// before the text, offsets trimmed, words split by GPT-2's regex.
fn byte_level() -> ByteLevel {
    ByteLevel::new(false, true, true)
}

/// A byte-level BPE tokenizer and the id of [`END_OF_TEXT`].
pub struct BookTokenizer {
    inner: Tokenizer,
    end_of_text: u32,
}

impl BookTokenizer {
    /// Trains a byte-level BPE of `vocab_size` entries (256 byte symbols, the special token,
    /// and merges) on `texts`, e.g. whole books. Deterministic for the same texts in the same
    /// order.
    pub fn train<I>(texts: I, vocab_size: usize, show_progress: bool) -> Result<Self, TrainError>
    where
        I: Iterator<Item = String> + Send,
    {
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(show_progress)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .build()
            .into();
        let mut tokenizer = Tokenizer::new(BPE::default());
        tokenizer.with_pre_tokenizer(Some(byte_level()));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        tokenizer
            .train(&mut trainer, texts)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        Self::from_tokenizer(tokenizer)
    }

    /// The same vocabulary with every number split into single digits: `" 66796"` encodes as
    /// `" 6" "6" "7" "9" "6"` instead of merges such as `" 66" "7" "9" "6"`, and all other
    /// text as before. The byte-level BPE chunks digits by frequency, so a number's first token
    /// is one of a hundred-odd `" 10"`-`" 99"` tokens as often as one of ten single digits, and
    /// the shipped model, asked for a pass key, started it right in 51 of 51 trials with a
    /// single-digit first token but 24 of 47 with a two-digit one (docs/MODEL_CARD.md).
    pub fn with_digits_split(&self) -> Result<Self, TrainError> {
        // After the byte-level step a space is `Ġ`; it stays with the digit after it.
        let digits = Split::new(
            SplitPattern::Regex("Ġ?[0-9]".to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        let mut inner = self.inner.clone();
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            byte_level().into(),
            digits.into(),
        ])));
        Ok(BookTokenizer {
            inner,
            end_of_text: self.end_of_text,
        })
    }

    /// Loads a tokenizer saved by [`BookTokenizer::save`] (a `tokenizers` JSON file).
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| TrainError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::from_tokenizer(inner)
    }

    fn from_tokenizer(mut inner: Tokenizer) -> Result<Self, TrainError> {
        // A book that happens to contain the marker's text must not produce the marker.
        inner.set_encode_special_tokens(true);
        let end_of_text = inner
            .token_to_id(END_OF_TEXT)
            .ok_or_else(|| TrainError::Tokenizer(format!("no {END_OF_TEXT} token")))?;
        Ok(BookTokenizer { inner, end_of_text })
    }

    /// Writes the tokenizer as pretty JSON, loadable by any `tokenizers` binding.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        self.inner
            .save(path, true)
            .map_err(|e| TrainError::Tokenizer(format!("{}: {e}", path.display())))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn end_of_text(&self) -> u32 {
        self.end_of_text
    }

    /// Token ids of `text`; the marker's text inside `text` encodes as ordinary text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TrainError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Bytes of text that each token id stands for, indexed by id: a byte-level token's
    /// string has one symbol per byte (a special token, never inside book text, counts its
    /// symbols). Measures per byte compare models whose tokenizers differ.
    pub fn bytes_per_token(&self) -> Vec<usize> {
        (0..self.vocab_size() as u32)
            .map(|id| {
                self.inner
                    .id_to_token(id)
                    .map_or(0, |token| token.chars().count())
            })
            .collect()
    }

    /// The text of `ids`, byte for byte what was encoded.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TrainError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))
    }
}
