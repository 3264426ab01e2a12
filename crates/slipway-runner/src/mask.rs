//! Replacing secret values with `***` in a byte stream that arrives in chunks.
//!
//! A secret may be split across two reads, so the masker holds back the longest
//! tail of its input that could still be the start of a secret, and emits it
//! with the next chunk (or at the end).

const MASK: &[u8] = b"***";

#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Vec<Vec<u8>>,
    pending: Vec<u8>,
}

impl Masker {
    pub fn new<I, S>(secrets: I) -> Masker
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_vec())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Masker {
            secrets,
            pending: Vec::new(),
        }
    }

    /// Feeds a chunk; returns what can be shown safely now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
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
            secrets: self.secrets.clone(),
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
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            if let Some(s) = self.secrets.iter().find(|s| rest.starts_with(s)) {
                out.extend_from_slice(MASK);
                i += s.len();
                continue;
            }
            if !at_end && self.secrets.iter().any(|s| s.starts_with(rest)) {
                return (out, i);
            }
            out.push(data[i]);
            i += 1;
        }
        (out, data.len())
    }
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
}
