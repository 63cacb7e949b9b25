//! Splitting one top-level JSON array, `[ {...}, {...} ]`, into its elements as bytes arrive.
//!
//! A platform answer of any size is one array, and neither serde_json (serde-rs/json#404) nor
//! arrow-json's `Decoder` (whitespace-separated values only) streams the elements of one array.
//! This scanner does: a byte-level state machine that tracks strings, escapes and nesting depth,
//! skips the outer brackets and cuts the array at its top-level commas. It holds at most the
//! element being read, whatever the array's size, and it is push-based, so the same code checks
//! a download once it is on disk (a body cut before its closing `]` is truncated and fetched
//! again; one extra read of the file) and feeds the decoder. It does not validate the elements' JSON: the decoder parses each one, so a
//! malformed element is one rejected row, not a failed file. Line numbers count the newlines
//! outside strings (a JSON string cannot hold a raw newline).

use super::blocks::byte_masks;
use super::json_tape::{describe_byte, is_json_whitespace};

/// A structural problem with the array as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("line {line}: {message}")]
    Syntax { line: u64, message: String },
    #[error("the array ends at line {line} without its closing `]`: the body was cut short")]
    Truncated { line: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[` (whitespace and a UTF-8 byte-order mark allowed).
    BeforeArray,
    /// After `[` (no element yet) or after a `,` (an element must follow).
    BeforeElement { after_comma: bool },
    /// Inside an object or array element.
    InContainer,
    /// Inside a scalar element (number, literal, or a top-level string).
    InScalar,
    /// After an element: `,` or `]` must follow.
    AfterElement,
    /// After the closing `]`: only whitespace may follow.
    Done,
}

/// Push-based scanner of one JSON array. Feed chunks with [`ArrayScanner::scan`]; call
/// [`ArrayScanner::finish`] at the end of input.
#[derive(Debug, Clone)]
pub struct ArrayScanner {
    state: State,
    depth: u32,
    in_string: bool,
    escaped: bool,
    line: u64,
    element_line: u64,
    elements: u64,
    /// Bytes of a UTF-8 byte-order mark seen so far (only before the array).
    bom: usize,
    /// Whether any byte was read: a byte-order mark may only be the very first.
    started: bool,
    /// Whether the inside of an element is skipped 64 bytes at a time ([`ArrayScanner::skip_blocks`]);
    /// off only in tests, to compare with the byte-by-byte path.
    blocks: bool,
}

impl Default for ArrayScanner {
    fn default() -> Self {
        ArrayScanner {
            state: State::BeforeArray,
            depth: 0,
            in_string: false,
            escaped: false,
            line: 1,
            element_line: 1,
            elements: 0,
            bom: 0,
            started: false,
            blocks: true,
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl ArrayScanner {
    pub fn new() -> ArrayScanner {
        ArrayScanner::default()
    }

    /// The 1-based line where the last completed (or current) element starts.
    pub fn element_line(&self) -> u64 {
        self.element_line
    }

    /// Elements completed so far.
    pub fn elements(&self) -> u64 {
        self.elements
    }

    fn syntax(&self, message: impl Into<String>) -> ScanError {
        ScanError::Syntax { line: self.line, message: message.into() }
    }

    /// Scans `chunk[start..]`, appending the bytes of the element being read to `element` (when
    /// given; the caller empties it, or keeps several elements back to back). Returns `Some(position after the element)` when an element completes — the caller
    /// takes it and calls again from there — or `None` when the chunk is used up.
    pub fn scan(
        &mut self,
        chunk: &[u8],
        start: usize,
        mut element: Option<&mut Vec<u8>>,
    ) -> Result<Option<usize>, ScanError> {
        let mut i = start;
        // The element's bytes are copied in one piece when it ends or the chunk does.
        let mut copy_from = matches!(self.state, State::InContainer | State::InScalar).then_some(start);
        let mut copy = |from: Option<usize>, to: usize| {
            if let (Some(e), Some(from)) = (element.as_deref_mut(), from) {
                e.extend_from_slice(&chunk[from..to]);
            }
        };
        // Where the byte-by-byte path must take over again after a block it could not skip.
        let mut bytewise_until = start;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::BeforeArray => {
                    let first = !self.started;
                    self.started = true;
                    if (1..BOM.len()).contains(&self.bom) {
                        // Inside a byte-order mark: it must be whole (whatever the chunking).
                        if b != BOM[self.bom] {
                            return Err(self.syntax("an incomplete UTF-8 byte-order mark"));
                        }
                        self.bom += 1;
                    } else if first && b == BOM[0] {
                        self.bom = 1;
                    } else if b == b'[' {
                        self.state = State::BeforeElement { after_comma: false };
                    } else if b == b'\n' {
                        self.line += 1;
                    } else if !is_json_whitespace(b) {
                        return Err(
                            self.syntax(format!("expected a JSON array (`[`), found {}", describe_byte(b)))
                        );
                    }
                    i += 1;
                }
                State::BeforeElement { after_comma } => {
                    match b {
                        b'\n' => self.line += 1,
                        b']' if !after_comma => self.state = State::Done,
                        b']' => return Err(self.syntax("a `,` is followed by `]` (trailing comma)")),
                        b',' => return Err(self.syntax("an array element is missing between commas")),
                        b if is_json_whitespace(b) => {}
                        b if !can_start_value(b) => {
                            return Err(
                                self.syntax(format!("expected an array element, found {}", describe_byte(b)))
                            )
                        }
                        b => {
                            self.element_line = self.line;
                            match b {
                                b'{' | b'[' => {
                                    self.state = State::InContainer;
                                    self.depth = 1;
                                }
                                b'"' => {
                                    self.state = State::InScalar;
                                    self.in_string = true;
                                }
                                _ => self.state = State::InScalar,
                            }
                            copy_from = Some(i);
                        }
                    }
                    i += 1;
                }
                State::InContainer if self.blocks && i >= bytewise_until && chunk.len() - i >= 64 => {
                    match self.skip_blocks(chunk, i) {
                        Skipped::Ended(end) => {
                            self.state = State::AfterElement;
                            self.elements += 1;
                            copy(copy_from, end);
                            return Ok(Some(end));
                        }
                        Skipped::Tail(next) => i = next,
                        Skipped::Irregular(next) => {
                            i = next;
                            bytewise_until = next + 64;
                        }
                    }
                }
                State::InContainer | State::InScalar if self.in_string => {
                    // Skip ahead to the next quote or backslash: string bodies are most bytes.
                    let end = if self.escaped {
                        self.escaped = false;
                        i + 1
                    } else {
                        match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                            None => chunk.len(),
                            Some(at) => {
                                let at = i + at;
                                if chunk[at] == b'"' {
                                    self.in_string = false;
                                    if self.state == State::InScalar {
                                        self.state = State::AfterElement;
                                        self.elements += 1;
                                        copy(copy_from, at + 1);
                                        return Ok(Some(at + 1));
                                    }
                                } else {
                                    self.escaped = true;
                                }
                                at + 1
                            }
                        }
                    };
                    i = end;
                }
                State::InContainer => {
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth += 1,
                        b'}' | b']' => self.depth -= 1,
                        b'\n' => self.line += 1,
                        _ => {}
                    }
                    i += 1;
                    if self.depth == 0 {
                        self.state = State::AfterElement;
                        self.elements += 1;
                        copy(copy_from, i);
                        return Ok(Some(i));
                    }
                }
                State::InScalar => {
                    if b == b',' || b == b']' || is_json_whitespace(b) {
                        // The scalar ended; the separator is read in the next state.
                        self.state = State::AfterElement;
                        self.elements += 1;
                        copy(copy_from, i);
                        return Ok(Some(i));
                    }
                    if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
                        return Err(
                            self.syntax(format!("unexpected {} in an array element", describe_byte(b)))
                        );
                    }
                    i += 1;
                }
                State::AfterElement => {
                    match b {
                        b',' => self.state = State::BeforeElement { after_comma: true },
                        b']' => self.state = State::Done,
                        b'\n' => self.line += 1,
                        b if is_json_whitespace(b) => {}
                        b => {
                            return Err(self.syntax(format!(
                                "expected `,` or `]` after an array element, found {}",
                                describe_byte(b)
                            )))
                        }
                    }
                    i += 1;
                }
                State::Done => {
                    if b == b'\n' {
                        self.line += 1;
                    } else if !is_json_whitespace(b) {
                        return Err(self.syntax(format!(
                            "unexpected {} after the array's closing `]`",
                            describe_byte(b)
                        )));
                    }
                    i += 1;
                }
            }
        }
        if matches!(self.state, State::InContainer | State::InScalar) {
            copy(copy_from, chunk.len());
        }
        Ok(None)
    }

    /// Skips the inside of an object or array element from `chunk[i..]`, 64 bytes at a time:
    /// each block becomes bit masks of its quotes, backslashes, brackets and newlines, and only
    /// the brackets outside strings are visited one by one. The same states and line counts as
    /// the byte-by-byte path, which takes a block back when a backslash lies outside a string
    /// there (invalid JSON, where that path ignores it and this one would take it as an escape).
    fn skip_blocks(&mut self, chunk: &[u8], mut i: usize) -> Skipped {
        while let Some(block) = chunk.get(i..i + 64) {
            let masks = BlockMasks::of(block.try_into().expect("64 bytes"));
            let (escaped, escapes_next) = escaped_bytes(masks.backslash, self.in_string && self.escaped);
            let mut inside = prefix_xor(masks.quote & !escaped);
            if self.in_string {
                inside = !inside;
            }
            if masks.backslash & !inside != 0 {
                return Skipped::Irregular(i);
            }
            let outside = !inside;
            let opens = masks.open & outside;
            let newlines = masks.newline & outside;
            let mut brackets = (masks.open | masks.close) & outside;
            while brackets != 0 {
                let at = brackets.trailing_zeros();
                let bit = 1u64 << at;
                if opens & bit != 0 {
                    self.depth += 1;
                } else {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.line += u64::from((newlines & (bit - 1)).count_ones());
                        self.in_string = false;
                        self.escaped = false;
                        return Skipped::Ended(i + at as usize + 1);
                    }
                }
                brackets &= brackets - 1;
            }
            self.line += u64::from(newlines.count_ones());
            self.in_string = inside >> 63 == 1;
            self.escaped = escapes_next;
            i += 64;
        }
        Skipped::Tail(i)
    }

    /// At the end of input: the array must have been closed. An empty input is not an array.
    pub fn finish(&mut self) -> Result<(), ScanError> {
        match self.state {
            State::Done => Ok(()),
            // A scalar element runs to the end of input: it ended, but `]` never came.
            _ => Err(ScanError::Truncated { line: self.line }),
        }
    }
}

/// Where [`ArrayScanner::skip_blocks`] stopped.
enum Skipped {
    /// The element ends before this position.
    Ended(usize),
    /// Fewer than 64 bytes are left from this position.
    Tail(usize),
    /// The block at this position needs the byte-by-byte path.
    Irregular(usize),
}

/// One bit per byte of a 64-byte block, for the bytes that matter inside an element.
struct BlockMasks {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
    newline: u64,
}

impl BlockMasks {
    fn of(block: &[u8; 64]) -> BlockMasks {
        let [quote, backslash, brace, bracket, close_brace, close_bracket, newline] =
            byte_masks(block, [b'"', b'\\', b'{', b'[', b'}', b']', b'\n']);
        BlockMasks { quote, backslash, open: brace | bracket, close: close_brace | close_bracket, newline }
    }
}

/// The bytes escaped by a backslash in a block (`first_escaped`: by one at the end of the
/// previous block), and whether the block's last backslash escapes the next block's first byte.
/// Backslashes are rare, so they are visited one by one.
fn escaped_bytes(backslash: u64, first_escaped: bool) -> (u64, bool) {
    let mut escaped = u64::from(first_escaped);
    let mut left = backslash & !escaped;
    while left != 0 {
        let at = left.trailing_zeros();
        if at == 63 {
            return (escaped, true);
        }
        let next = 1u64 << (at + 1);
        escaped |= next;
        left &= !(1u64 << at) & !next;
    }
    (escaped, false)
}

/// Bit k of the result is the parity of the set bits at positions 0..=k: with quote bits in,
/// the bytes from an opening quote up to (not including) its closing quote.
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

/// Whether `b` can begin a JSON value: an object, array, string, number or literal.
fn can_start_value(b: u8) -> bool {
    matches!(b, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
}

/// Checks that a whole file is one complete JSON array (used after a download).
pub fn check_file(path: &std::path::Path) -> Result<u64, CheckError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut scanner = ArrayScanner::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        let mut at = 0;
        while let Some(next) = scanner.scan(&buffer[..n], at, None)? {
            at = next;
        }
    }
    scanner.finish()?;
    Ok(scanner.elements())
}

/// The elements of one JSON array read from `reader`, each as its bytes, as they are in the file
/// (no re-serialisation: a rewrite that keeps an element keeps it byte for byte). At most one
/// element is held, whatever the array's size. A structural error, or an array cut short, ends
/// the iteration with that error.
pub struct Elements<R> {
    reader: R,
    scanner: ArrayScanner,
    buffer: Vec<u8>,
    filled: usize,
    at: usize,
    element: Vec<u8>,
    done: bool,
}

impl<R: std::io::Read> Elements<R> {
    pub fn new(reader: R) -> Elements<R> {
        Elements {
            reader,
            scanner: ArrayScanner::new(),
            buffer: vec![0u8; 1 << 16],
            filled: 0,
            at: 0,
            element: Vec::new(),
            done: false,
        }
    }
}

impl<R: std::io::Read> Iterator for Elements<R> {
    type Item = Result<Vec<u8>, CheckError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if self.at >= self.filled {
                match self.reader.read(&mut self.buffer) {
                    Ok(0) => {
                        self.done = true;
                        return self.scanner.finish().err().map(|e| Err(e.into()));
                    }
                    Ok(n) => (self.filled, self.at) = (n, 0),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e.into()));
                    }
                }
            }
            match self.scanner.scan(&self.buffer[..self.filled], self.at, Some(&mut self.element)) {
                Ok(Some(next)) => {
                    self.at = next;
                    return Some(Ok(std::mem::take(&mut self.element)));
                }
                Ok(None) => self.at = self.filled,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    #[test]
    fn elements_come_out_as_written_one_at_a_time_whatever_the_reads() {
        let text = b"\xEF\xBB\xBF[ {\"a\": \"x,]\\\"\"} ,\n 1.50e3,[2, {}], \"s\" ,null]\n";
        // A reader that hands over one byte at a time: every cut inside an element is crossed.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let expected: Vec<&[u8]> = vec![b"{\"a\": \"x,]\\\"\"}", b"1.50e3", b"[2, {}]", b"\"s\"", b"null"];
        for elements in [
            super::Elements::new(&text[..]).collect::<Vec<_>>(),
            super::Elements::new(Trickle(text)).collect(),
        ] {
            let got: Vec<Vec<u8>> = elements.into_iter().map(Result::unwrap).collect();
            assert_eq!(got, expected);
        }
        let cut: Vec<_> = super::Elements::new(&b"[1, 2"[..]).collect();
        assert!(cut.last().unwrap().is_err(), "a cut array ends with an error: {cut:?}");
    }

    use super::*;

    /// Splits `input` fed in chunks of `size` bytes.
    fn split(input: &str, size: usize) -> Result<Vec<(String, u64)>, ScanError> {
        let (elements, scanned) = split_bytes(input.as_bytes(), size, true);
        scanned?;
        Ok(elements.into_iter().map(|(e, line)| (String::from_utf8(e).unwrap(), line)).collect())
    }

    fn elements(input: &str) -> Vec<String> {
        let whole = split(input, usize::MAX).unwrap();
        // Every chunking gives the same elements: a chunk boundary may fall anywhere.
        for size in [1, 2, 3, 5, 7, 64] {
            assert_eq!(split(input, size).unwrap(), whole, "chunks of {size}");
        }
        whole.into_iter().map(|(e, _)| e).collect()
    }

    /// Elements with their lines, and how the scan ended.
    type Scanned = (Vec<(Vec<u8>, u64)>, Result<(), ScanError>);

    /// Splits `input` fed in chunks of `size` bytes, skipping blocks or not.
    fn split_bytes(input: &[u8], size: usize, blocks: bool) -> Scanned {
        let mut scanner = ArrayScanner { blocks, ..ArrayScanner::new() };
        let mut out = Vec::new();
        let mut element = Vec::new();
        let scanned = input.chunks(size.max(1)).try_for_each(|chunk| {
            let mut at = 0;
            while let Some(next) = scanner.scan(chunk, at, Some(&mut element))? {
                out.push((std::mem::take(&mut element), scanner.element_line()));
                at = next;
            }
            Ok(())
        });
        (out, scanned.and_then(|()| scanner.finish()))
    }

    /// The 64-byte block path against the byte-by-byte one on random arrays whose elements are
    /// full of what matters inside them (quotes, escapes, runs of backslashes, brackets,
    /// newlines), well formed or mutated, in every chunking: the same elements, lines and errors.
    #[test]
    fn blocks_and_bytes_agree_on_random_arrays() {
        let mut rng = crate::test_rng::XorShift::new(0x2545_F491_4F6C_DD1D);
        let mut next = move |below: usize| rng.below(below);
        let pieces: [&[u8]; 14] = [
            b"\"",
            b"\\",
            b"\\\"",
            b"\\\\",
            b"{",
            b"}",
            b"[",
            b"]",
            b"\n",
            b",",
            b":",
            b"abcdefgh",
            b" ",
            b"1",
        ];
        let mut blocks_used = 0;
        for case in 0..4000 {
            let mut input = b"[".to_vec();
            for e in 0..1 + next(4) {
                if e > 0 {
                    input.extend_from_slice(b",\n");
                }
                // A well-formed element: an object of strings (with escapes) and nested arrays.
                input.extend_from_slice(b"{");
                for f in 0..next(12) {
                    if f > 0 {
                        input.push(b',');
                    }
                    input.extend_from_slice(format!("\"k{f}\":").as_bytes());
                    if next(3) == 0 {
                        input.extend_from_slice(b"[1,{\"x\":[]},\n\"]\"]");
                    } else {
                        input.push(b'"');
                        for _ in 0..next(40) {
                            let piece = match next(8) {
                                0 => &b"\\\""[..],
                                1 => b"\\\\",
                                2 => b"}]{[,\\n",
                                _ => b"text ",
                            };
                            input.extend_from_slice(piece);
                        }
                        input.push(b'"');
                    }
                }
                input.extend_from_slice(b"}");
            }
            input.extend_from_slice(b"]\n");
            // Half the cases are mutated: random pieces written over random places.
            if case % 2 == 1 {
                for _ in 0..1 + next(6) {
                    let piece = pieces[next(pieces.len())];
                    let at = next(input.len());
                    let end = (at + piece.len()).min(input.len());
                    input[at..end].copy_from_slice(&piece[..end - at]);
                }
            }
            let expected = split_bytes(&input, usize::MAX, false);
            for size in [usize::MAX, 1, 63, 64, 65, 200] {
                let got = split_bytes(&input, size, true);
                assert_eq!(
                    got,
                    expected,
                    "case {case}, chunks of {size}: {}",
                    String::from_utf8_lossy(&input)
                );
            }
            if input.len() > 200 {
                blocks_used += 1;
            }
        }
        assert!(blocks_used > 1000, "too few inputs long enough for blocks: {blocks_used}");
    }

    #[test]
    fn splits_at_top_level_commas_only() {
        assert_eq!(
            elements(r#"[{"a":1,"b":[1,2,{"c":[]}]}, {"d":"x"} ,{}]"#),
            [r#"{"a":1,"b":[1,2,{"c":[]}]}"#, r#"{"d":"x"}"#, "{}"]
        );
        assert_eq!(elements("[]"), Vec::<String>::new());
        assert_eq!(elements(" \n[ \n ] \n"), Vec::<String>::new());
        assert_eq!(elements("[1, -2.5e3,true,null, \"s\"]"), ["1", "-2.5e3", "true", "null", "\"s\""]);
    }

    #[test]
    fn brackets_and_commas_inside_strings_are_text() {
        assert_eq!(
            elements(r#"[{"t":"a ] b [ c, d } {"},{"u":"]"}]"#),
            [r#"{"t":"a ] b [ c, d } {"}"#, r#"{"u":"]"}"#]
        );
    }

    #[test]
    fn escaped_quotes_and_backslashes_do_not_end_strings() {
        assert_eq!(
            elements(r#"[{"t":"say \"hi\" ]"},{"p":"C:\\dir\\"},{"q":"\\\"]"}]"#),
            [r#"{"t":"say \"hi\" ]"}"#, r#"{"p":"C:\\dir\\"}"#, r#"{"q":"\\\"]"}"#]
        );
    }

    #[test]
    fn deep_nesting_and_unicode_survive_any_chunking() {
        let input = "[{\"a\":[[[[{\"b\":\"日本語 😀 ,]\"}]]]]},\n{\"c\":\"\\u00e9\"}]";
        assert_eq!(elements(input), ["{\"a\":[[[[{\"b\":\"日本語 😀 ,]\"}]]]]}", "{\"c\":\"\\u00e9\"}"]);
    }

    #[test]
    fn element_lines_count_newlines_outside_strings() {
        let lines: Vec<u64> =
            split("[\n{\"a\":1},\n\n{\"b\":\n2},{\"c\":3}\n]", 3).unwrap().iter().map(|e| e.1).collect();
        assert_eq!(lines, [2, 4, 5]);
    }

    /// RFC 8259 whitespace is space, tab, LF and CR: a form feed between tokens is an error.
    #[test]
    fn a_form_feed_is_not_whitespace() {
        for input in ["[\u{c}]", "\u{c}[1]", "[1,\u{c}2]", "[1]\u{c}", "[1\u{c}]"] {
            let err = split(input, 64).unwrap_err().to_string();
            assert!(err.contains("form feed"), "{input:?}: {err}");
        }
        assert_eq!(elements("\t[\r\n1 ,\t2]\r\n"), ["1", "2"]);
    }

    #[test]
    fn a_byte_order_mark_before_the_array_is_skipped() {
        assert_eq!(elements("\u{feff}[{\"a\":1}]"), ["{\"a\":1}"]);
    }

    /// Found by the fuzzer: a mark was accepted at the start of any chunk, so chunking changed
    /// the outcome. Only the input's very first bytes may be a mark, and only a whole one.
    #[test]
    fn a_byte_order_mark_anywhere_else_or_incomplete_is_an_error_whatever_the_chunking() {
        for input in [&b"\n\xEF\xBB\xBF[1]"[..], b"\xEF[1]", b"\xEF\xBB[1]", b"\n\n\xEF[\x1c"] {
            for size in [1, 2, 3, 64] {
                let mut scanner = ArrayScanner::new();
                let scanned = input.chunks(size).try_for_each(|chunk| {
                    let mut at = 0;
                    while let Some(next) = scanner.scan(chunk, at, None)? {
                        at = next;
                    }
                    Ok::<(), ScanError>(())
                });
                assert!(
                    matches!(scanned, Err(ScanError::Syntax { .. })),
                    "{input:?} in chunks of {size}: {scanned:?}"
                );
            }
        }
    }

    #[test]
    fn a_body_cut_anywhere_before_the_closing_bracket_is_truncated() {
        let whole = r#"[{"a":[1],"b":"x]"},{"c":{"d":[2]}}]"#;
        for cut in 1..whole.len() {
            let result = split(&whole[..cut], 4);
            assert!(matches!(result, Err(ScanError::Truncated { .. })), "cut at {cut}: {result:?}");
        }
        assert!(split(whole, 4).is_ok());
        assert!(matches!(split("", 4), Err(ScanError::Truncated { .. })));
    }

    #[test]
    fn structural_errors_name_the_line() {
        for (input, expected) in [
            ("{\"a\":1}", "expected a JSON array"),
            ("[1,]", "trailing comma"),
            ("[1,,2]", "missing between commas"),
            ("[{}\n{}]", "expected `,` or `]`"),
            ("[1] x", "after the array's closing"),
        ] {
            let err = split(input, 2).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
        assert!(split("[{}\n{}]", 2).unwrap_err().to_string().starts_with("line 2"));
    }
}
