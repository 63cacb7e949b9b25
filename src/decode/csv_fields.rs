//! Tokenising the records of one CSV chunk where they lie: each field is a slice of the chunk
//! (only a quoted field with a `""` in it is unescaped, into the record's own buffer), and the
//! field ends are found 64 bytes at a time.
//!
//! The rules are the csv crate's (`csv_core` with its defaults, which the header and every other
//! CSV reader here use): RFC 4180 quoting, where a `"` opens a quoted field only as a field's
//! first byte, `""` inside one is a quote and the bytes after its closing quote up to the next
//! delimiter are text; `\r`, `\n` and `\r\n` each end a record; empty lines are skipped; the last
//! record needs no terminator, and a trailing delimiter is an empty last field. What differs is
//! the cost: `csv_core` walks a DFA byte by byte and copies every field into its record, while
//! here SSE2 compares give a mask of each block's `,` `\r` `\n` and one of its `"`, and a field
//! costs a count of trailing zeros. Test: the same records, fields and starts as the csv crate
//! on random inputs of quotes, delimiters and line breaks.

use std::ops::Range;

use super::blocks::byte_masks;

/// One field: a range of the chunk, or of the record's unescaped text.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    unescaped: bool,
}

/// One record of a chunk: its fields, borrowed from the chunk where they can be.
#[derive(Debug, Default)]
pub struct Record<'c> {
    chunk: &'c [u8],
    spans: Vec<Span>,
    /// Quoted fields with a `""`, unescaped.
    unescaped: Vec<u8>,
    /// The record's bytes in the chunk, from its first byte to its terminator (excluded).
    raw: Range<usize>,
}

impl<'c> Record<'c> {
    /// The number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Field `i`'s bytes.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let span = self.spans.get(i)?;
        let from = if span.unescaped { &self.unescaped } else { self.chunk };
        Some(&from[span.start..span.end])
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    /// The record as it lies in the chunk (quotes and delimiters included, terminator excluded):
    /// valid UTF-8 exactly when every field is, since the bytes between fields are ASCII.
    pub fn raw(&self) -> &'c [u8] {
        &self.chunk[self.raw.clone()]
    }

    /// The offset of the record's first byte in the chunk.
    pub fn start(&self) -> usize {
        self.raw.start
    }
}

impl std::ops::Index<usize> for Record<'_> {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        self.get(i).expect("a field of the record")
    }
}

/// The records of one chunk, in order.
pub struct Tokenizer<'c> {
    chunk: &'c [u8],
    /// Where the next record's search starts.
    at: usize,
    blocks: Blocks,
}

impl<'c> Tokenizer<'c> {
    pub fn new(chunk: &'c [u8]) -> Tokenizer<'c> {
        Tokenizer { chunk, at: 0, blocks: Blocks::default() }
    }

    /// Fills `record` with the next record; false when the chunk has no more.
    pub fn next_record(&mut self, record: &mut Record<'c>) -> bool {
        let chunk = self.chunk;
        record.chunk = chunk;
        record.spans.clear();
        record.unescaped.clear();
        // Line breaks between records are skipped (an empty line is no record).
        let mut at = self.at;
        while at < chunk.len() && matches!(chunk[at], b'\r' | b'\n') {
            at += 1;
        }
        if at == chunk.len() {
            self.at = at;
            return false;
        }
        let start = at;
        // Each pass reads one field starting at `at`; `end` is the record's terminator.
        let end = loop {
            let (field, stop) = if chunk.get(at) == Some(&b'"') {
                self.quoted(record, at + 1)
            } else {
                let stop = self.blocks.next_delimiter(chunk, at);
                (Span { start: at, end: stop, unescaped: false }, stop)
            };
            record.spans.push(field);
            match chunk.get(stop) {
                Some(b',') => at = stop + 1,
                _ => break stop,
            }
        };
        record.raw = start..end;
        // Past the terminator; the `\n` of a `\r\n` is skipped with the empty lines.
        self.at = (end + 1).min(chunk.len());
        true
    }

    /// A quoted field whose text starts at `from` (just past its opening quote): the field and
    /// where it stops (its delimiter, its record's terminator, or the chunk's end).
    fn quoted(&mut self, record: &mut Record<'c>, from: usize) -> (Span, usize) {
        let chunk = self.chunk;
        let mut text = from;
        // Set once a `""` is met: the field is then built in `record.unescaped` from here.
        let mut unescaped: Option<usize> = None;
        loop {
            let Some(quote) = self.blocks.next_quote(chunk, text) else {
                // No closing quote: the field runs to the chunk's end.
                return (finish(record, unescaped, text..chunk.len()), chunk.len());
            };
            match chunk.get(quote + 1) {
                Some(b'"') => {
                    // `""`: one quote of text.
                    unescaped.get_or_insert(record.unescaped.len());
                    record.unescaped.extend_from_slice(&chunk[text..=quote]);
                    text = quote + 2;
                }
                None | Some(b',' | b'\r' | b'\n') => {
                    return (finish(record, unescaped, text..quote), quote + 1);
                }
                Some(_) => {
                    // Text after the closing quote, up to the delimiter, is kept as it is (its
                    // quotes included): the field is the quoted text then that text.
                    unescaped.get_or_insert(record.unescaped.len());
                    record.unescaped.extend_from_slice(&chunk[text..quote]);
                    let stop = self.blocks.next_delimiter(chunk, quote + 1);
                    return (finish(record, unescaped, quote + 1..stop), stop);
                }
            }
        }
    }
}

/// The field made of what was unescaped since `unescaped` (if anything was) and then
/// `chunk[last]`; without anything unescaped, `last` is the field, in the chunk.
fn finish(record: &mut Record<'_>, unescaped: Option<usize>, last: Range<usize>) -> Span {
    match unescaped {
        None => Span { start: last.start, end: last.end, unescaped: false },
        Some(start) => {
            record.unescaped.extend_from_slice(&record.chunk[last]);
            Span { start, end: record.unescaped.len(), unescaped: true }
        }
    }
}

/// The masks of the 64-byte block that holds the last position asked about.
struct Blocks {
    /// The block's first offset (`usize::MAX`: none yet).
    base: usize,
    /// Its `,` `\r` `\n` bytes, and its `"` bytes, one bit per byte.
    delimiters: u64,
    quotes: u64,
}

impl Default for Blocks {
    fn default() -> Blocks {
        Blocks { base: usize::MAX, delimiters: 0, quotes: 0 }
    }
}

impl Blocks {
    /// The first `,` `\r` or `\n` at or after `from`, or the chunk's length.
    fn next_delimiter(&mut self, chunk: &[u8], from: usize) -> usize {
        self.next(chunk, from, |blocks| blocks.delimiters)
    }

    /// The first `"` at or after `from`.
    fn next_quote(&mut self, chunk: &[u8], from: usize) -> Option<usize> {
        let at = self.next(chunk, from, |blocks| blocks.quotes);
        (at < chunk.len()).then_some(at)
    }

    fn next(&mut self, chunk: &[u8], from: usize, mask: impl Fn(&Blocks) -> u64) -> usize {
        let mut base = from & !63;
        let mut skip = from - base;
        while base < chunk.len() {
            if self.base != base {
                self.load(chunk, base);
            }
            let bits = mask(self) >> skip << skip;
            if bits != 0 {
                return base + bits.trailing_zeros() as usize;
            }
            base += 64;
            skip = 0;
        }
        chunk.len()
    }

    fn load(&mut self, chunk: &[u8], base: usize) {
        let masks = match chunk.get(base..base + 64) {
            Some(block) => byte_masks(block.try_into().expect("64 bytes"), CLASSES),
            None => {
                // The chunk's last, partial block, padded with bytes that match nothing.
                let mut block = [0u8; 64];
                block[..chunk.len() - base].copy_from_slice(&chunk[base..]);
                byte_masks(&block, CLASSES)
            }
        };
        (self.base, self.delimiters, self.quotes) = (base, masks[0] | masks[1] | masks[2], masks[3]);
    }
}

/// The bytes the masks are of: the three that end a field, then the quote.
const CLASSES: [u8; 4] = [b',', b'\r', b'\n', b'"'];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    /// Records as the csv crate reads them: (start offset, fields).
    fn csv_crate(input: &[u8]) -> Vec<(Vec<Vec<u8>>, usize)> {
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(::csv::Trim::None)
            .from_reader(input);
        let mut record = ::csv::ByteRecord::new();
        let mut out = Vec::new();
        while reader.read_byte_record(&mut record).expect("reading from memory") {
            let start = record.position().expect("a position").byte() as usize;
            out.push((record.iter().map(<[u8]>::to_vec).collect(), start));
        }
        out
    }

    fn tokenized(input: &[u8]) -> Vec<(Vec<Vec<u8>>, usize)> {
        let mut tokenizer = Tokenizer::new(input);
        let mut record = Record::default();
        let mut out = Vec::new();
        while tokenizer.next_record(&mut record) {
            out.push((record.iter().map(<[u8]>::to_vec).collect(), record.start()));
        }
        out
    }

    /// The csv crate notes a record's start where reading it began: after the previous
    /// record's terminator (on the `\n` of a `\r\n`, before skipped empty lines). The tokeniser
    /// gives the record's first byte; both are on the same line once empty lines are skipped.
    fn first_byte(input: &[u8], position: usize) -> usize {
        let mut at = position;
        while at < input.len() && matches!(input[at], b'\r' | b'\n') {
            at += 1;
        }
        at
    }

    #[test]
    fn fields_and_records_are_the_csv_crates_on_random_inputs() {
        let mut rng = XorShift::new(0x5eed_c5f1);
        let alphabet: &[u8] = b"\",\r\nab\xc3\xa9 ";
        for case in 0..20_000 {
            let len = rng.below(200);
            let input: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
            let expected: Vec<_> = csv_crate(&input)
                .into_iter()
                .map(|(fields, start)| (fields, first_byte(&input, start)))
                .collect();
            assert_eq!(tokenized(&input), expected, "case {case}: {:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn long_fields_cross_blocks() {
        let text = "x".repeat(150);
        let input = format!("{text},\"{text}\"\"{text}\",\"{text}\"tail\r\n,\n\"a\nb\"");
        let second = input.find("\r\n").expect("a CRLF") + 2;
        assert_eq!(
            tokenized(input.as_bytes()),
            vec![
                (
                    vec![
                        text.as_bytes().to_vec(),
                        format!("{text}\"{text}").into_bytes(),
                        format!("{text}tail").into_bytes(),
                    ],
                    0
                ),
                (vec![vec![], vec![]], second),
                (vec![b"a\nb".to_vec()], second + 2),
            ]
        );
    }

    #[test]
    fn the_raw_record_is_its_bytes_without_the_terminator() {
        let input = b"a,\"b,c\"\r\n\r\nd\n";
        let mut tokenizer = Tokenizer::new(input);
        let mut record = Record::default();
        assert!(tokenizer.next_record(&mut record));
        assert_eq!(record.raw(), b"a,\"b,c\"");
        assert!(tokenizer.next_record(&mut record));
        assert_eq!((record.raw(), record.start()), (b"d".as_slice(), 11));
        assert!(!tokenizer.next_record(&mut record));
    }
}
