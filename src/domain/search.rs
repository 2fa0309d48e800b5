//! The words search knows: one tokenizer for what is indexed (contact names, message text) and
//! for what is searched (`q`), so both databases and both sides always agree.
//!
//! A word is a run of letters and digits, lower-cased; anything else separates words, so no
//! search syntax exists. Words are cut to [`MAX_TERM_CHARS`] characters: a search word matches
//! every indexed word it is a prefix of, and cutting both sides the same way keeps that true.

use std::collections::BTreeSet;

/// Longer words are indexed (and searched) by their first this many characters.
pub const MAX_TERM_CHARS: usize = 32;

/// The message content fields that hold searchable text.
const TEXT_FIELDS: [&str; 4] = ["body", "text", "caption", "title"];

/// The words of `text`, in order, lower-cased and cut to [`MAX_TERM_CHARS`].
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        // Lower-casing can add a combining mark (İ -> i̇), which is not a letter: dropped, so
        // a word lower-cases to one word.
        .map(|w| {
            w.chars()
                .flat_map(char::to_lowercase)
                .filter(|c| c.is_alphanumeric())
                .take(MAX_TERM_CHARS)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
}

/// The distinct words a conversation is found by: its contact's name and username and the
/// text of its messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Terms(BTreeSet<String>);

impl Terms {
    pub fn add_text(&mut self, text: &str) {
        self.0.extend(words(text));
    }

    /// The searchable text of a message's content (`body`, `text`, `caption`, `title`).
    pub fn add_message(&mut self, content: &serde_json::Value) {
        for field in TEXT_FIELDS {
            if let Some(text) = content.get(field).and_then(|v| v.as_str()) {
                self.add_text(text);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In sorted order (writers insert in one order, so they never deadlock each other).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// The end of the range of indexed words that start with `prefix`: `[prefix, end)` in byte
/// order. Indexed words hold letters and digits only, so none contains U+10FFFF, the largest
/// character, and every word starting with `prefix` sorts below `prefix` + U+10FFFF.
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// How many 64-bit words a conversation's [`WordBits`] span (1,024 bits).
pub const WORD_BITS_COLUMNS: usize = 16;

/// Word prefixes of these lengths (in characters) set a bit each.
const KEY_CHARS: [usize; 2] = [3, 5];

/// A conversation's word prefixes as a Bloom filter: each word sets one bit for its first
/// 3 characters and one for its first 5 (when it is that long). A search word of 3 or more
/// characters can only be in a conversation whose bits include its own prefixes' bits, so
/// walking the inbox reads them from the conversation's row and probes the words index only
/// for the few that pass (about 1 in 10 for a word in 10% of conversations, against every one
/// before). Bits may be set for words that are gone (a superset is always safe); all of them
/// set matches everything, which is what conversations written before the bits existed have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WordBits(pub [i64; WORD_BITS_COLUMNS]);

impl WordBits {
    pub fn of<'w>(words: impl IntoIterator<Item = &'w str>) -> Self {
        let mut bits = Self::default();
        for word in words {
            for (column, mask) in prefix_bits(word) {
                bits.0[column] |= mask;
            }
        }
        bits
    }

    /// The bits (column, mask) a conversation must have to hold a word starting with
    /// `search_word`; none for a word shorter than 3 characters.
    pub fn required(search_word: &str) -> impl Iterator<Item = (usize, i64)> + '_ {
        prefix_bits(search_word)
    }
}

/// One bit per key prefix `word` is long enough to have: FNV-1a of the prefix's UTF-8 bytes,
/// a fixed function because the bits are stored.
fn prefix_bits(word: &str) -> impl Iterator<Item = (usize, i64)> + '_ {
    KEY_CHARS.into_iter().filter_map(move |chars| {
        let end = word
            .char_indices()
            .nth(chars - 1)
            .map(|(at, c)| at + c.len_utf8())?;
        let hash = word.as_bytes()[..end]
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
            });
        let bit = (hash % (64 * WORD_BITS_COLUMNS as u64)) as usize;
        Some((bit / 64, (1_u64 << (bit % 64)) as i64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn words_are_letters_and_digits_lower_cased() {
        assert_eq!(
            words("Olá, 'MUNDO'* OR 1=1 naïve—Straße").collect::<Vec<_>>(),
            ["olá", "mundo", "or", "1", "1", "naïve", "straße"]
        );
        assert_eq!(words(" -*- ").count(), 0);
    }

    #[test]
    fn long_words_are_cut_on_both_sides_alike() {
        let long = "x".repeat(40);
        let cut: Vec<String> = words(&long).collect();
        assert_eq!(cut, ["x".repeat(MAX_TERM_CHARS)]);
        // Lower-casing İ gives i and a combining dot; the word stays one word of letters.
        assert_eq!(words("İSTANBUL").collect::<Vec<_>>(), ["istanbul"]);
    }

    #[test]
    fn message_text_comes_from_every_text_field() {
        let mut terms = Terms::default();
        terms.add_message(&json!({"type": "image", "caption": "Blue shoes", "url": "https://x.test/a-b"}));
        terms.add_message(&json!({"type": "text", "body": "Where are my shoes?"}));
        terms.add_message(&json!({"type": "location", "latitude": 1.5}));
        assert_eq!(
            terms.iter().collect::<Vec<_>>(),
            ["are", "blue", "my", "shoes", "where"]
        );
    }

    #[test]
    fn word_bits_come_from_prefixes_of_three_and_five_characters() {
        assert_eq!(WordBits::required("re").count(), 0);
        assert_eq!(WordBits::required("ref").count(), 1);
        assert_eq!(WordBits::required("refun").count(), 2);
        // "refund" and "refer" share the bit of "ref", not the one of "refun".
        let refund = WordBits::of(["refund"]);
        let refer = WordBits::of(["refer"]);
        let has = |bits: WordBits, word: &str| {
            WordBits::required(word).all(|(column, mask)| bits.0[column] & mask != 0)
        };
        assert!(has(refund, "ref") && has(refer, "ref"));
        assert!(has(refund, "refun") && !has(refer, "refun"));
        // Multi-byte characters count as one.
        assert_eq!(WordBits::required("ñañ").count(), 1);
        assert_eq!(WordBits::of(Vec::<&str>::new()), WordBits::default());
    }

    proptest! {
        /// A conversation's bits hold the required bits of every prefix of each of its words:
        /// the bit test never hides a conversation the words index would find.
        #[test]
        fn word_bits_hold_every_prefix_of_every_word(text in "\\PC{0,80}") {
            let mut terms = Terms::default();
            terms.add_text(&text);
            let bits = WordBits::of(terms.iter());
            for word in terms.iter() {
                for (cut, _) in word.char_indices().skip(1).chain([(word.len(), ' ')]) {
                    for (column, mask) in WordBits::required(&word[..cut]) {
                        prop_assert!(bits.0[column] & mask != 0);
                    }
                }
            }
        }

        /// Every indexed word of any text lies in the range of each of its prefixes, and the
        /// query side splits a word exactly as the index does.
        #[test]
        fn every_word_is_in_the_range_of_its_prefixes(text in "\\PC{0,60}") {
            for word in words(&text) {
                prop_assert!(!word.is_empty());
                prop_assert!(word.chars().all(char::is_alphanumeric));
                let again: Vec<String> = words(&word).collect();
                prop_assert_eq!(again.len(), 1);
                for (cut, _) in word.char_indices().skip(1).chain([(word.len(), ' ')]) {
                    let prefix = &word[..cut];
                    prop_assert!(word.as_str() >= prefix);
                    prop_assert!(word < prefix_end(prefix));
                }
            }
        }
    }
}
