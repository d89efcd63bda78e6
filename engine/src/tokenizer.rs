//! The tokenizer, built from a GGUF file's `tokenizer.ggml.*` metadata on the `tokenizers` crate:
//! byte-level BPE with the model's pre-tokenizer, plus exact byte decoding for streaming.
//!
//! Document text is always encoded as plain text: a string that looks like a control token
//! (`<|endoftext|>`) in a user's file stays text. Control tokens enter a prompt only by id, through
//! the template.

use std::collections::HashMap;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, TokenizerImpl};

use crate::EngineError;
use crate::gguf::GgufFile;

type Inner = TokenizerImpl<
    BPE,
    NormalizerWrapper,
    PreTokenizerWrapper,
    tokenizers::processors::PostProcessorWrapper,
    tokenizers::decoders::DecoderWrapper,
>;

/// The pre-tokenizer regex of Qwen2 (and of llama.cpp's `qwen2` pre-tokenizer type).
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's, which groups digits in threes.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// A model's tokenizer.
pub struct Tokenizer {
    inner: Inner,
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    /// What each token contributes to the decoded text; empty for control tokens.
    bytes: Vec<Vec<u8>>,
    control: Vec<bool>,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) eot: Option<u32>,
    pub(crate) add_bos: bool,
    pre: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("vocab", &self.tokens.len()).field("pre", &self.pre).finish()
    }
}

impl Tokenizer {
    /// Reads the tokenizer of a GGUF model file without loading its weights.
    pub fn load(path: &std::path::Path) -> Result<Tokenizer, EngineError> {
        Tokenizer::from_gguf(&GgufFile::open(path)?)
    }

    /// Builds the tokenizer a GGUF file describes.
    pub(crate) fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, EngineError> {
        let model = gguf.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(gguf.invalid(format!(
                "tokenizer model `{model}` is not supported (Glint reads byte-level BPE `gpt2` tokenizers)"
            )));
        }
        let tokens = gguf.strings("tokenizer.ggml.tokens")?;
        let merges =
            if gguf.has("tokenizer.ggml.merges") { gguf.strings("tokenizer.ggml.merges")? } else { Vec::new() };
        let types = gguf.opt_ints("tokenizer.ggml.token_type").unwrap_or_default();
        let pre = gguf.opt_string("tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
        let token_id = |key: &str| {
            gguf.opt_uint(key).and_then(|id| u32::try_from(id).ok()).filter(|&id| (id as usize) < tokens.len())
        };
        let bos = token_id("tokenizer.ggml.bos_token_id");
        let eos = token_id("tokenizer.ggml.eos_token_id");
        let eot = token_id("tokenizer.ggml.eot_token_id");
        let add_bos = matches!(gguf.opt_bool("tokenizer.ggml.add_bos_token"), Some(true));
        Tokenizer::new(tokens, merges, types, &pre, bos, eos, eot, add_bos)
            .map_err(|e| gguf.invalid(format!("cannot build the tokenizer: {e}")))
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        tokens: Vec<String>,
        merges: Vec<String>,
        types: Vec<i64>,
        pre: &str,
        bos: Option<u32>,
        eos: Option<u32>,
        eot: Option<u32>,
        add_bos: bool,
    ) -> Result<Tokenizer, EngineError> {
        let type_of = |i: usize| types.get(i).copied().unwrap_or(1);
        let control: Vec<bool> = (0..tokens.len()).map(|i| type_of(i) == TOKEN_TYPE_CONTROL).collect();
        // Control and user-defined tokens never come out of BPE merges; keeping them out of the
        // BPE vocabulary means document text can never produce them.
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| !matches!(type_of(*i), TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges: Merges =
            merges.iter().filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(matches!(pre, "llama3" | "llama-bpe"))
            .build()
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut inner: Inner = TokenizerImpl::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
        inner.with_decoder(Some(tokenizers::decoders::DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
        // llama.cpp matches user-defined tokens even in plain text, so they are added tokens.
        let user_defined: Vec<AddedToken> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| type_of(*i) == TOKEN_TYPE_USER_DEFINED)
            .map(|(_, t)| AddedToken::from(t.clone(), false))
            .collect();
        if !user_defined.is_empty() {
            inner.add_tokens(&user_defined);
        }

        let unicode_to_byte = unicode_to_byte();
        let bytes = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| match type_of(i) {
                TOKEN_TYPE_CONTROL => Vec::new(),
                TOKEN_TYPE_USER_DEFINED => t.as_bytes().to_vec(),
                _ => token_bytes(t, &unicode_to_byte),
            })
            .collect();
        let ids = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        Ok(Tokenizer { inner, tokens, ids, bytes, control, bos, eos, eot, add_bos, pre: pre.to_string() })
    }

    /// Encodes document text; strings that look like control tokens stay text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self.inner.encode_fast(text, false).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The id of a token spelled exactly `text` (control tokens included).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// How a token is spelled in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// The bytes a token adds to decoded text (nothing for control tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Decodes ids to text, replacing invalid UTF-8.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The pre-tokenizer name from the GGUF (`smollm`, `qwen2`, ...).
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre
    }
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, EngineError> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, EngineError> {
        let split = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(PreTokenizerWrapper::Split(split))
    };
    let byte_level_regex = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true));
    let byte_level_plain = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false));
    Ok(match pre {
        "qwen2" | "deepseek-r1-qwen" => {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![split(QWEN2_PATTERN)?, byte_level_plain]))
        }
        "llama3" | "llama-bpe" => {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![split(LLAMA3_PATTERN)?, byte_level_plain]))
        }
        "gpt-2" | "gpt2" | "default" => byte_level_regex,
        other => {
            if !matches!(other, "smollm" | "starcoder" | "refact" | "codeshell") {
                tracing::warn!(pre = other, "unknown pre-tokenizer; using the StarCoder/SmolLM one");
            }
            PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                byte_level_regex,
            ]))
        }
    })
}

/// GPT-2's map from the printable characters byte-level BPE spells tokens with back to bytes.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        if let (Some(c), Ok(byte)) = (char::from_u32(c), u8::try_from(b)) {
            map.insert(c, byte);
        }
    }
    map
}

fn token_bytes(token: &str, map: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match map.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// Turns a stream of token bytes into text without ever splitting a UTF-8 character: bytes of an
/// incomplete character wait for the next token.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes and returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: `valid_up_to` marks the end of valid UTF-8.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete character at the end: keep it for later.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never be valid: replace them and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end, with incomplete characters replaced.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_map_covers_all_bytes() {
        let map = unicode_to_byte();
        assert_eq!(map.len(), 256);
        assert_eq!(map.get(&'Ġ'), Some(&b' '));
        assert_eq!(map.get(&'Ċ'), Some(&b'\n'));
        assert_eq!(map.get(&'a'), Some(&b'a'));
    }

    #[test]
    fn utf8_stream_holds_back_incomplete_characters() {
        let mut stream = Utf8Stream::default();
        let snowman = "☃".as_bytes();
        assert_eq!(stream.push(b"a"), "a");
        assert_eq!(stream.push(&snowman[..1]), "");
        assert_eq!(stream.push(&snowman[1..2]), "");
        assert_eq!(stream.push(&snowman[2..]), "☃");
        assert_eq!(stream.push(&[0xff, b'b']), "\u{fffd}b");
        assert_eq!(stream.push(&snowman[..2]), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }
}
