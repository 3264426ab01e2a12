//! Replacing secret values with `***` in a byte stream that arrives in chunks.
//!
//! A secret may be split across two reads, so the masker holds back the longest
//! tail of its input that could still be the start of a secret, and emits it
//! with the next chunk (or at the end).
//!
//! A step can print a secret encoded (`base64`, `xxd -p`, a URL), so each
//! value is also looked for as base64 (standard and URL-safe, with and without
//! padding, at each of the three alignments it can have inside a longer
//! encoded text), as hex (any case) and percent-encoded (any case of the hex
//! digits), and base64 wrapped at 76 or 64 columns as `base64` and PEM
//! print it. A value of six bytes or more is also found in any letter case.
//! Patterns are indexed by their first byte, so each position of the
//! stream is compared only with the few patterns that can start there.

use std::sync::Arc;

const MASK: &[u8] = b"***";
/// Shorter encoded forms would mask ordinary text; the value itself is always masked.
const MIN_ENCODED: usize = 6;

/// One byte string to hide, compared exactly or ignoring ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    bytes: Vec<u8>,
    fold_case: bool,
}

impl Pattern {
    fn is_at(&self, rest: &[u8]) -> bool {
        rest.len() >= self.bytes.len() && self.same(&rest[..self.bytes.len()])
    }

    /// Whether `rest` (shorter than the pattern) could grow into it.
    fn could_start(&self, rest: &[u8]) -> bool {
        rest.len() < self.bytes.len() && self.same_prefix(rest)
    }

    fn same(&self, other: &[u8]) -> bool {
        if self.fold_case {
            self.bytes.eq_ignore_ascii_case(other)
        } else {
            self.bytes == other
        }
    }

    fn same_prefix(&self, prefix: &[u8]) -> bool {
        let mine = &self.bytes[..prefix.len()];
        if self.fold_case {
            mine.eq_ignore_ascii_case(prefix)
        } else {
            mine == prefix
        }
    }
}

#[derive(Debug, Default)]
struct Patterns {
    /// Longest first, so a secret containing another is masked whole.
    all: Vec<Pattern>,
    /// For each byte, the patterns (indices into `all`, longest first) that can start with it.
    by_first: Vec<Vec<u32>>,
    longest: usize,
}

impl Patterns {
    fn new(values: Vec<Vec<u8>>) -> Patterns {
        let mut all: Vec<Pattern> = values.iter().flat_map(|v| forms_of(v)).collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.bytes.len()));
        all.dedup();
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in all.iter().enumerate() {
            let first = p.bytes[0];
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            by_first[usize::from(first)].push(index);
            if p.fold_case && first.is_ascii_alphabetic() {
                let other = if first.is_ascii_lowercase() {
                    first.to_ascii_uppercase()
                } else {
                    first.to_ascii_lowercase()
                };
                by_first[usize::from(other)].push(index);
            }
        }
        let longest = all.iter().map(|p| p.bytes.len()).max().unwrap_or(0);
        Patterns {
            all,
            by_first,
            longest,
        }
    }

    fn starting_with(&self, byte: u8) -> impl Iterator<Item = &Pattern> {
        self.by_first
            .get(usize::from(byte))
            .into_iter()
            .flatten()
            .filter_map(|&i| self.all.get(i as usize))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Masker {
    patterns: Arc<Patterns>,
    pending: Vec<u8>,
}

impl Masker {
    pub fn new<I, S>(secrets: I) -> Masker
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let values: Vec<Vec<u8>> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_vec())
            .filter(|s| !s.is_empty())
            .collect();
        Masker {
            patterns: Arc::new(Patterns::new(values)),
            pending: Vec::new(),
        }
    }

    /// Feeds a chunk; returns what can be shown safely now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.patterns.all.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let (out, keep_from) = self.scan(false);
        self.pending.drain(..keep_from);
        out
    }

    /// A whole text masked at once (titles, messages), leaving the stream state alone.
    pub fn mask_text(&self, text: &str) -> String {
        let mut one = Masker {
            patterns: self.patterns.clone(),
            pending: text.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&one.finish()).into_owned()
    }

    /// Everything still held back, masked: call once the stream has ended.
    pub fn finish(&mut self) -> Vec<u8> {
        let (out, _) = self.scan(true);
        self.pending.clear();
        out
    }

    /// Masks `pending`; returns the output and where the held-back tail starts.
    fn scan(&self, at_end: bool) -> (Vec<u8>, usize) {
        let data = &self.pending;
        let patterns = &self.patterns;
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            let mut candidates = patterns.starting_with(data[i]);
            if let Some(p) = candidates.find(|p| p.is_at(rest)) {
                out.extend_from_slice(MASK);
                i += p.bytes.len();
                continue;
            }
            // Only the last few bytes can be the start of a secret still arriving.
            if !at_end
                && rest.len() < patterns.longest
                && patterns.starting_with(data[i]).any(|p| p.could_start(rest))
            {
                return (out, i);
            }
            out.push(data[i]);
            i += 1;
        }
        (out, data.len())
    }
}

/// Every form of one value the log must not show.
fn forms_of(value: &[u8]) -> Vec<Pattern> {
    let exact = |bytes: Vec<u8>| Pattern {
        bytes,
        fold_case: false,
    };
    // A value printed upper- or lower-cased is still the value; below the
    // length of an encoded form, folding case would hide ordinary words.
    let mut forms = vec![Pattern {
        bytes: value.to_vec(),
        fold_case: value.len() >= MIN_ENCODED,
    }];
    let mut encoded = Vec::new();
    for alphabet in [STANDARD, URL_SAFE] {
        let whole = base64(value, alphabet);
        encoded.extend(wrapped(&whole).map(exact));
        encoded.push(exact(whole.trim_end_matches('=').as_bytes().to_vec()));
        encoded.push(exact(whole.into_bytes()));
        for shift in 0..3 {
            encoded.push(exact(base64_core(value, shift, alphabet).into_bytes()));
        }
    }
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    encoded.push(Pattern {
        bytes: hex.into_bytes(),
        fold_case: true,
    });
    let percent = percent_encoded(value);
    if percent.as_bytes() != value {
        encoded.push(Pattern {
            bytes: percent.replace("%20", "+").into_bytes(),
            fold_case: true,
        });
        encoded.push(Pattern {
            bytes: percent.into_bytes(),
            fold_case: true,
        });
    }
    forms.extend(
        encoded
            .into_iter()
            .filter(|p| p.bytes.len() >= MIN_ENCODED && p.bytes != value),
    );
    forms
}

/// The line widths encoders wrap base64 at: coreutils `base64` (76) and
/// PEM/`openssl base64` (64).
const WRAP_WIDTHS: [usize; 2] = [76, 64];

/// `encoded` as a wrapping encoder prints it, one form per width it is longer than.
fn wrapped(encoded: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    WRAP_WIDTHS
        .into_iter()
        .filter(move |&width| encoded.len() > width)
        .map(move |width| {
            let lines: Vec<&[u8]> = encoded.as_bytes().chunks(width).collect();
            lines.join(&b'\n')
        })
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with padding.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= group.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What base64 of a longer text shows of `value` when `value` starts `shift`
/// bytes after a group boundary: the characters only its own bytes decide.
fn base64_core(value: &[u8], shift: usize, alphabet: &[u8; 64]) -> String {
    let skip = (3 - shift) % 3;
    let Some(aligned) = value.get(skip..) else {
        return String::new();
    };
    let whole = aligned.len() / 3 * 3;
    let mut core = base64(&aligned[..whole], alphabet);
    let tail = &aligned[whole..];
    if !tail.is_empty() {
        // Of a partial group, the first `len` characters need only its bytes.
        let partial = base64(tail, alphabet);
        core.push_str(&partial[..tail.len()]);
    }
    core
}

/// Percent-encoding of everything but the unreserved characters of RFC 3986.
fn percent_encoded(value: &[u8]) -> String {
    value
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_chunks(secrets: &[&str], chunks: &[&str]) -> String {
        let mut m = Masker::new(secrets);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.feed(c.as_bytes()));
        }
        out.extend(m.finish());
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn masks_whole_and_split_secrets() {
        assert_eq!(mask_chunks(&["hunter2"], &["pw=hunter2\n"]), "pw=***\n");
        assert_eq!(mask_chunks(&["hunter2"], &["pw=hun", "ter2\n"]), "pw=***\n");
        assert_eq!(
            mask_chunks(&["hunter2"], &["h", "u", "n", "t", "e", "r", "2"]),
            "***"
        );
        assert_eq!(mask_chunks(&["hunter2"], &["hunt", "ing\n"]), "hunting\n");
        assert_eq!(mask_chunks(&["hunter2"], &["end: hunt"]), "end: hunt");
    }

    #[test]
    fn longest_secret_wins_and_overlaps_are_masked() {
        assert_eq!(mask_chunks(&["abc", "abcdef"], &["xabcdefx"]), "x***x");
        assert_eq!(mask_chunks(&["aab"], &["aaab"]), "a***");
    }

    #[test]
    fn holds_back_only_possible_prefixes() {
        let mut m = Masker::new(["secret"]);
        assert_eq!(m.feed(b"a sec"), b"a ");
        assert_eq!(m.feed(b"ond"), b"second");
    }

    #[test]
    fn our_base64_is_base64() {
        assert_eq!(base64(b"", STANDARD), "");
        assert_eq!(base64(b"f", STANDARD), "Zg==");
        assert_eq!(base64(b"fo", STANDARD), "Zm8=");
        assert_eq!(base64(b"foob", STANDARD), "Zm9vYg==");
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8=");
    }

    const SECRET: &str = "Sup3r/s3cret+value?=&x~ 1";

    /// Whether any six characters in a row of `encoded`'s middle survive masking.
    fn leaks(masked: &str, encoded: &str) -> bool {
        let core = &encoded[encoded.len() / 6..encoded.len() - encoded.len() / 6];
        core.as_bytes()
            .windows(8)
            .any(|w| masked.contains(std::str::from_utf8(w).expect("ascii")))
    }

    #[test]
    fn base64_at_every_alignment_and_both_alphabets_is_masked() {
        for prefix in ["", "x", "xy", "xyz", "wxyz"] {
            for alphabet in [STANDARD, URL_SAFE] {
                for suffix in ["", "!", "!?"] {
                    let text = format!("{prefix}{SECRET}{suffix}");
                    let padded = base64(text.as_bytes(), alphabet);
                    for encoded in [padded.clone(), padded.trim_end_matches('=').to_string()] {
                        let line = format!("out: {encoded}\n");
                        // Split mid-way too: the stream arrives in pieces.
                        let (a, b) = line.split_at(line.len() / 2);
                        let masked = mask_chunks(&[SECRET], &[a, b]);
                        assert!(masked.contains("***"), "{prefix:?}: {masked}");
                        assert!(!leaks(&masked, &encoded), "{prefix:?}{suffix:?}: {masked}");
                    }
                }
            }
        }
    }

    #[test]
    fn hex_in_any_case_and_url_encodings_are_masked() {
        let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
        let url = percent_encoded(SECRET.as_bytes());
        for shown in [
            hex.clone(),
            hex.to_uppercase(),
            url.clone(),
            url.to_lowercase(),
            url.replace("%20", "+"),
        ] {
            assert_eq!(
                mask_chunks(&[SECRET], &["<", &shown, ">"]),
                "<***>",
                "{shown}"
            );
        }
    }

    #[test]
    fn case_changed_values_are_masked() {
        assert_eq!(
            mask_chunks(&["Hunter2Pass"], &["a HUNTER2PASS b hunter2pass"]),
            "a *** b ***"
        );
    }

    #[test]
    fn wrapped_base64_of_a_long_value_is_masked() {
        let long = "k".repeat(40) + SECRET + &"z".repeat(40);
        let encoded = base64(long.as_bytes(), STANDARD);
        for width in WRAP_WIDTHS {
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(width)
                .map(|l| std::str::from_utf8(l).expect("ascii"))
                .collect();
            let shown = lines.join("\n") + "\n";
            let masked = mask_chunks(&[long.as_str()], &[&shown[..50], &shown[50..]]);
            assert_eq!(masked, "***\n", "width {width}");
        }
    }

    #[test]
    fn short_values_mask_only_themselves() {
        // base64 of "ab" is "YWI=": masking it would hide ordinary words.
        assert_eq!(mask_chunks(&["ab"], &["YWI= 6162 ab"]), "YWI= 6162 ***");
    }
}
