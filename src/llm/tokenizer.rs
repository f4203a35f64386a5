//! The byte-level BPE tokenizer stored in a GGUF file's metadata
//! (`tokenizer.ggml.model = "gpt2"`): a vocabulary, merge ranks and the
//! control tokens.
//!
//! Encoding splits the text at control tokens written literally (such as
//! `<|im_start|>`), then into words the way GPT-2's pre-tokenizer does
//! (with each digit on its own for the `smollm` pre-tokenizer), maps each
//! word's bytes to the printable characters the vocabulary is written in,
//! and merges pairs by rank until no merge applies.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// GGUF token type of control tokens.
const CONTROL: i32 = 3;

/// A byte-level BPE tokenizer.
pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    /// Control tokens, longest first, for splitting text.
    control: Vec<(String, u32)>,
    split_digits: bool,
    /// Byte to its vocabulary character, and back.
    byte_char: [char; 256],
    char_byte: HashMap<char, u8>,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
}

/// GPT-2's map of bytes to printable characters: printable Latin-1 bytes
/// stand for themselves, the others for 256, 257, ... in byte order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut next = 256u32;
    let mut map = ['\0'; 256];
    for b in 0..=255u8 {
        map[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\u{FFFD}')
        };
    }
    map
}

/// Character classes of the GPT-2 pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Splits text into words like GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// with every digit a word of its own when `split_digits`.
fn words(text: &str, split_digits: bool) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let run = |mut i: usize, k: Class| {
        while at(i).is_some_and(|c| class(c) == k) {
            if split_digits && k == Class::Number {
                return i + 1;
            }
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let end = if let Some(n) = contraction(&chars[i..]) {
            i + n
        } else if c == ' ' && at(i + 1).is_some_and(|n| class(n) != Class::Space) {
            let k = class(at(i + 1).unwrap_or(' '));
            if split_digits && k == Class::Number {
                i + 1
            } else {
                run(i + 1, k)
            }
        } else if class(c) == Class::Space {
            let end = run(i, Class::Space);
            // Leave the last space to the word that follows.
            if end < chars.len() && end - i > 1 {
                end - 1
            } else {
                end
            }
        } else {
            run(i, class(c))
        };
        out.push(&text[offset(i)..offset(end)]);
        i = end;
    }
    out
}

/// Length of an English contraction (`'s`, `'ll`, ...) at the start.
fn contraction(chars: &[(usize, char)]) -> Option<usize> {
    if chars.first()?.1 != '\'' {
        return None;
    }
    let next: String = chars.iter().skip(1).take(2).map(|&(_, c)| c).collect();
    if ["re", "ve", "ll"].iter().any(|s| next.starts_with(s)) {
        Some(3)
    } else if ["s", "t", "m", "d"].iter().any(|s| next.starts_with(s)) {
        Some(2)
    } else {
        None
    }
}

impl Tokenizer {
    /// A tokenizer from the vocabulary, its GGUF token types, merges
    /// (`"a b"` lines) and the pre-tokenizer name.
    pub fn new(
        tokens: Vec<String>,
        types: &[i32],
        merges: &[String],
        pre: &str,
        bos: Option<u32>,
        eos: Option<u32>,
    ) -> Result<Tokenizer> {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, line) in merges.iter().enumerate() {
            let (a, b) = line.split_once(' ').ok_or_else(|| {
                Error::Config(format!(
                    "tokenizer merge {rank} (`{line}`) is not two tokens"
                ))
            })?;
            ranks.insert((a.to_string(), b.to_string()), rank);
        }
        let mut control: Vec<(String, u32)> = types
            .iter()
            .enumerate()
            .filter(|&(i, &t)| t == CONTROL && !tokens[i].is_empty())
            .map(|(i, _)| (tokens[i].clone(), i as u32))
            .collect();
        control.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        let byte_char = byte_chars();
        let char_byte = byte_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(Tokenizer {
            tokens,
            ids,
            ranks,
            control,
            split_digits: pre == "smollm",
            byte_char,
            char_byte,
            bos,
            eos,
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.tokens.len()
    }

    /// The token ids of `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let next = self
                .control
                .iter()
                .filter_map(|(t, id)| rest.find(t.as_str()).map(|at| (at, t, *id)))
                .min_by_key(|&(at, _, _)| at);
            let (plain, control) = match next {
                Some((at, t, id)) => (&rest[..at], Some((t.len(), at, id))),
                None => (rest, None),
            };
            for word in words(plain, self.split_digits) {
                self.encode_word(word, &mut out)?;
            }
            match control {
                Some((len, at, id)) => {
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => break,
            }
        }
        Ok(out)
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut parts: Vec<String> = word
            .bytes()
            .map(|b| self.byte_char[b as usize].to_string())
            .collect();
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, p)| {
                    self.ranks
                        .get(&(p[0].clone(), p[1].clone()))
                        .map(|&r| (r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", parts[i], parts[i + 1]);
            parts.splice(i..i + 2, [merged]);
        }
        for p in parts {
            let id = self.ids.get(&p).ok_or_else(|| {
                Error::Config(format!(
                    "the tokenizer has no token for `{p}` (in `{word}`)"
                ))
            })?;
            out.push(*id);
        }
        Ok(())
    }

    /// The bytes a token stands for (control tokens: none).
    pub fn bytes(&self, id: u32) -> Vec<u8> {
        match self.tokens.get(id as usize) {
            Some(t) if !self.control.iter().any(|(_, c)| *c == id) => t
                .chars()
                .map(|c| self.char_byte.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .unwrap_or_else(|| t.as_bytes().to_vec()),
            _ => Vec::new(),
        }
    }

    /// The text of some tokens (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.bytes(id)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Turns a stream of tokens into text pieces, holding back bytes until
/// they form whole UTF-8 characters.
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// The text that token `id` completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.pending.extend(tokenizer.bytes(id));
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let s = s.to_string();
                self.pending.clear();
                s
            }
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_gpt2_pattern() {
        assert_eq!(
            words("The capital of France is", false),
            ["The", " capital", " of", " France", " is"]
        );
        assert_eq!(
            words("it's  done!\n", false),
            ["it", "'s", " ", " done", "!", "\n"]
        );
        assert_eq!(
            words("a 2024 b", true),
            ["a", " ", "2", "0", "2", "4", " b"]
        );
        assert_eq!(words("a 2024", false), ["a", " 2024"]);
        assert_eq!(words("x\n\ny", false), ["x", "\n", "\n", "y"]);
    }

    #[test]
    fn bytes_map_to_printable_characters_and_back() {
        let map = byte_chars();
        assert_eq!(map[b' ' as usize], 'Ġ');
        assert_eq!(map[b'\n' as usize], 'Ċ');
        assert_eq!(map[b'A' as usize], 'A');
        let distinct: std::collections::HashSet<char> = map.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    fn tiny() -> Tokenizer {
        let tokens: Vec<String> = ["<|end|>", "a", "b", "Ġ", "ab", "Ġab", "c", "Ã", "©"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let types = [CONTROL, 1, 1, 1, 1, 1, 1, 1, 1];
        let merges = ["a b".to_string(), "Ġ ab".to_string()];
        Tokenizer::new(tokens, &types, &merges, "gpt2", None, Some(0)).unwrap()
    }

    #[test]
    fn merges_apply_by_rank_and_control_tokens_are_kept_whole() {
        let t = tiny();
        assert_eq!(t.encode("ab abc<|end|>ab").unwrap(), [4, 5, 6, 0, 4]);
        assert_eq!(t.decode(&[4, 5, 6, 0, 4]), "ab abcab");
        let err = t.encode("abz").unwrap_err().to_string();
        assert!(err.contains("`z`"), "{err}");
    }

    #[test]
    fn a_stream_holds_back_partial_characters() {
        let t = tiny();
        let mut stream = TextStream::default();
        assert_eq!(stream.push(&t, 7), "");
        assert_eq!(stream.push(&t, 8), "é");
    }
}
