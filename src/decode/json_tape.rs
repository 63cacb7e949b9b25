//! One JSON value (an array element) parsed into a tape of positions, checked against RFC 8259.
//!
//! The decoder needs three things from an element that a parsed `serde_json::Value` cannot give:
//! the exact bytes of any value (a `json_text` column, `_extra`, a list kept as text in a `Utf8`
//! column: key order, number literals and escapes as sent), numbers as their literal (a 30-digit
//! integer or `1E400` is kept, never rounded), and no allocation per value. So the element is
//! parsed once into a flat tape — one [`Node`] per value or key, each with its kind and byte range,
//! containers with the index just past their last descendant — and the decoder walks the tape,
//! slicing the element for text and literals. This is the layout of simd-json's tape, without
//! SIMD: the element's UTF-8 is checked in one pass by the standard library, string bodies are
//! skipped with `memchr`, and the structure is a small recursive-descent parser.
//!
//! Strict where the RFC is: whitespace is space, tab, LF and CR only (a form feed is an error),
//! no raw control characters inside strings, only the RFC's escapes, numbers by the RFC's
//! grammar (`01`, `+1`, `.5`, `1.` and `NaN` are errors), nothing after the value.

use std::borrow::Cow;

/// What a node of the tape is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    True,
    False,
    /// A number; `integer` when its literal has no fraction and no exponent.
    Number {
        integer: bool,
    },
    /// A string; `escaped` when its body has a backslash escape.
    String {
        escaped: bool,
    },
    Array,
    Object,
}

/// One value (or object key) of the element: its kind, its bytes `start..end` in the element
/// (strings include their quotes), and for containers the index of the first node after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub start: u32,
    pub end: u32,
    /// Containers: the index of the node after the container's last descendant; else own + 1.
    pub next: u32,
}

/// Why an element is not JSON: what, and at which byte of the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// Values nested deeper than this are refused (a stack guard; no platform nests past ~10).
const MAX_DEPTH: usize = 512;

/// A parsed element. Reuse one tape across elements: [`Tape::parse`] clears it.
#[derive(Debug, Default)]
pub struct Tape {
    pub nodes: Vec<Node>,
}

/// JSON whitespace (RFC 8259 §2): space, horizontal tab, line feed, carriage return. Nothing else.
pub fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A byte as a message names it.
pub fn describe_byte(b: u8) -> String {
    match b {
        0x0c => "a form feed (0x0c), which is not JSON whitespace (only space, tab, LF and CR are)".into(),
        b if b.is_ascii_graphic() => format!("`{}`", b as char),
        b => format!("byte 0x{b:02x}"),
    }
}

impl Tape {
    pub fn new() -> Tape {
        Tape::default()
    }

    /// Parses `element` (one JSON value, with optional surrounding whitespace). The element must
    /// already be valid UTF-8 (the caller checks it once).
    pub fn parse(&mut self, element: &[u8]) -> Result<(), SyntaxError> {
        self.nodes.clear();
        if element.len() > u32::MAX as usize {
            return Err(SyntaxError { offset: 0, message: "a value larger than 4 GiB".into() });
        }
        let mut parser = Parser { bytes: element, at: 0, nodes: &mut self.nodes };
        parser.skip_whitespace();
        parser.value(0)?;
        parser.skip_whitespace();
        if parser.at < element.len() {
            return Err(
                parser.error(format!("unexpected {} after the value", describe_byte(element[parser.at])))
            );
        }
        Ok(())
    }

    /// The root node (index 0) of a parsed element.
    pub fn root(&self) -> usize {
        0
    }

    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    /// The children of a container: for an array its items, for an object alternately a key
    /// and its value.
    pub fn children(&self, index: usize) -> Children<'_> {
        let node = &self.nodes[index];
        Children { tape: self, at: index + 1, end: node.next as usize }
    }
}

/// Iterates the direct children of a container node.
pub struct Children<'a> {
    tape: &'a Tape,
    at: usize,
    end: usize,
}

impl Iterator for Children<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.at >= self.end {
            return None;
        }
        let index = self.at;
        self.at = self.tape.nodes[index].next as usize;
        Some(index)
    }
}

struct Parser<'a, 'n> {
    bytes: &'a [u8],
    at: usize,
    nodes: &'n mut Vec<Node>,
}

impl Parser<'_, '_> {
    fn error(&self, message: String) -> SyntaxError {
        SyntaxError { offset: self.at, message }
    }

    fn skip_whitespace(&mut self) {
        while self.at < self.bytes.len() && is_json_whitespace(self.bytes[self.at]) {
            self.at += 1;
        }
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) -> usize {
        let index = self.nodes.len();
        self.nodes.push(Node { kind, start: start as u32, end: end as u32, next: index as u32 + 1 });
        index
    }

    fn unexpected(&self, what: &str) -> SyntaxError {
        match self.bytes.get(self.at) {
            Some(&b) => self.error(format!("expected {what}, found {}", describe_byte(b))),
            None => self.error(format!("expected {what}, found the end of the value")),
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("values nested deeper than {MAX_DEPTH} levels")));
        }
        let start = self.at;
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let escaped = self.string()?;
                self.push(Kind::String { escaped }, start, self.at);
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let integer = self.number()?;
                self.push(Kind::Number { integer }, start, self.at);
                Ok(())
            }
            Some(b't') => self.literal(b"true", Kind::True),
            Some(b'f') => self.literal(b"false", Kind::False),
            Some(b'n') => self.literal(b"null", Kind::Null),
            _ => Err(self.unexpected("a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<(), SyntaxError> {
        if self.bytes[self.at..].starts_with(word) {
            let start = self.at;
            self.at += word.len();
            self.push(kind, start, self.at);
            Ok(())
        } else {
            Err(self.error(format!("expected `{}`", String::from_utf8_lossy(word))))
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), SyntaxError> {
        let index = self.push(Kind::Object, self.at, self.at);
        self.at += 1;
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
        } else {
            loop {
                if self.bytes.get(self.at) != Some(&b'"') {
                    return Err(self.unexpected("a field name in double quotes"));
                }
                let start = self.at;
                let escaped = self.string()?;
                self.push(Kind::String { escaped }, start, self.at);
                self.skip_whitespace();
                if self.bytes.get(self.at) != Some(&b':') {
                    return Err(self.unexpected("`:` after a field name"));
                }
                self.at += 1;
                self.skip_whitespace();
                self.value(depth + 1)?;
                self.skip_whitespace();
                match self.bytes.get(self.at) {
                    Some(b',') => {
                        self.at += 1;
                        self.skip_whitespace();
                    }
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("`,` or `}` in an object")),
                }
            }
        }
        self.close(index);
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), SyntaxError> {
        let index = self.push(Kind::Array, self.at, self.at);
        self.at += 1;
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
        } else {
            loop {
                self.value(depth + 1)?;
                self.skip_whitespace();
                match self.bytes.get(self.at) {
                    Some(b',') => {
                        self.at += 1;
                        self.skip_whitespace();
                    }
                    Some(b']') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("`,` or `]` in an array")),
                }
            }
        }
        self.close(index);
        Ok(())
    }

    fn close(&mut self, index: usize) {
        let next = self.nodes.len() as u32;
        let node = &mut self.nodes[index];
        node.end = self.at as u32;
        node.next = next;
    }

    /// Reads a string starting at its opening quote; returns whether it has escapes.
    fn string(&mut self) -> Result<bool, SyntaxError> {
        self.at += 1;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.at..];
            let found = match string_stop(rest) {
                Some(at) if rest[at] >= 0x20 => at,
                // A control byte in a string that is closed later is the error to name.
                Some(at) if memchr::memchr2(b'"', b'\\', &rest[at..]).is_some() => {
                    self.at += at;
                    return Err(self.error(format!(
                        "a raw control character ({}) inside a string; JSON escapes it",
                        describe_byte(self.bytes[self.at])
                    )));
                }
                _ => {
                    self.at = self.bytes.len();
                    return Err(self.error("a string without its closing quote".into()));
                }
            };
            self.at += found;
            if self.bytes[self.at] == b'"' {
                self.at += 1;
                return Ok(escaped);
            }
            escaped = true;
            match self.bytes.get(self.at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 2,
                Some(b'u') => {
                    let hex = self.bytes.get(self.at + 2..self.at + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(self.error("`\\u` must be followed by four hex digits".into()));
                    }
                    self.at += 6;
                }
                _ => return Err(self.error("an invalid escape in a string".into())),
            }
        }
    }

    /// Reads a number by the RFC's grammar; returns whether it is an integer literal.
    fn number(&mut self) -> Result<bool, SyntaxError> {
        let b = self.bytes;
        let mut at = self.at;
        if b.get(at) == Some(&b'-') {
            at += 1;
        }
        match b.get(at) {
            Some(b'0') => {
                at += 1;
                if b.get(at).is_some_and(u8::is_ascii_digit) {
                    self.at = at;
                    return Err(self.error("a number with a leading zero".into()));
                }
            }
            Some(b'1'..=b'9') => {
                while b.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
            }
            _ => {
                self.at = at;
                return Err(self.unexpected("a digit"));
            }
        }
        let mut integer = true;
        if b.get(at) == Some(&b'.') {
            integer = false;
            at += 1;
            if !b.get(at).is_some_and(u8::is_ascii_digit) {
                self.at = at;
                return Err(self.unexpected("a digit after the decimal point"));
            }
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
        }
        if matches!(b.get(at), Some(b'e' | b'E')) {
            integer = false;
            at += 1;
            if matches!(b.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            if !b.get(at).is_some_and(u8::is_ascii_digit) {
                self.at = at;
                return Err(self.unexpected("a digit in the exponent"));
            }
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
        }
        self.at = at;
        Ok(integer)
    }
}

/// Where a string body stops being plain text: the first quote, backslash or control byte of
/// `rest`. One pass (16 bytes at a time on x86-64) instead of a search for the quote and a
/// second pass over the same bytes for control characters.
fn string_stop(rest: &[u8]) -> Option<usize> {
    let stops = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        while at + 16 <= rest.len() {
            // SAFETY: SSE2 is part of the x86-64 baseline; the 16 bytes at `at` lie inside `rest`.
            let mask = unsafe {
                let v = _mm_loadu_si128(rest.as_ptr().add(at).cast::<__m128i>());
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                // b <= 0x1F exactly when max(b, 0x1F) is 0x1F (unsigned).
                let low = _mm_set1_epi8(0x1F);
                let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
            };
            if mask != 0 {
                return Some(at + mask.trailing_zeros() as usize);
            }
            at += 16;
        }
    }
    rest[at..].iter().position(|&b| stops(b)).map(|found| at + found)
}

/// The text of a string node (without quotes), unescaped; borrowed when it has no escapes.
/// `None` when an escape names a lone UTF-16 surrogate, which no UTF-8 text can hold.
pub fn string_text<'e>(element: &'e [u8], node: &Node) -> Option<Cow<'e, str>> {
    let body = &element[node.start as usize + 1..node.end as usize - 1];
    // SAFETY: the element was checked to be UTF-8 before parsing, and a string's body starts
    // after an ASCII quote and ends before one, so it is on char boundaries.
    let body = unsafe { std::str::from_utf8_unchecked(body) };
    match node.kind {
        Kind::String { escaped: false } => Some(Cow::Borrowed(body)),
        _ => unescape(body).map(Cow::Owned),
    }
}

/// The raw body of a string node (between its quotes), escapes as sent.
pub fn raw_string_body<'e>(element: &'e [u8], node: &Node) -> &'e str {
    let body = &element[node.start as usize + 1..node.end as usize - 1];
    // SAFETY: as in `string_text`.
    unsafe { std::str::from_utf8_unchecked(body) }
}

/// The exact text of any node as sent.
pub fn raw_text<'e>(element: &'e [u8], node: &Node) -> &'e str {
    let bytes = &element[node.start as usize..node.end as usize];
    // SAFETY: nodes begin and end at ASCII structural bytes of a UTF-8-checked element.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// Unescapes a string body already checked by the parser; `None` for a lone surrogate.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let (c, used) = match escape.as_bytes()[0] {
            b'"' => ('"', 1),
            b'\\' => ('\\', 1),
            b'/' => ('/', 1),
            b'b' => ('\u{8}', 1),
            b'f' => ('\u{c}', 1),
            b'n' => ('\n', 1),
            b'r' => ('\r', 1),
            b't' => ('\t', 1),
            _ => {
                let high = u16::from_str_radix(&escape[1..5], 16).ok()?;
                if (0xD800..0xDC00).contains(&high) {
                    let low = escape.get(5..11).filter(|s| s.starts_with("\\u"))?;
                    let low = u16::from_str_radix(&low[2..], 16).ok()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    let code = 0x10000 + (((high as u32) - 0xD800) << 10) + ((low as u32) - 0xDC00);
                    (char::from_u32(code)?, 11)
                } else {
                    (char::from_u32(high as u32)?, 5)
                }
            }
        };
        out.push(c);
        rest = &escape[used..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector search stops where a byte-by-byte search would, wherever the stop lies
    /// relative to the 16-byte steps, and for bytes above 0x7F (compared unsigned).
    #[test]
    fn a_string_stops_at_its_first_quote_backslash_or_control_byte() {
        let mut rng = crate::test_rng::XorShift::new(0x9E37_79B9_7F4A_7C15);
        for case in 0..20_000 {
            let state = rng.next_u64();
            let len = (state % 80) as usize;
            let mut text: Vec<u8> =
                (0..len).map(|k| [b'a', 0xC3, 0xA9, 0x7F, 0x20][(k + case) % 5]).collect();
            if len > 0 && !state.is_multiple_of(7) {
                let at = (state >> 8) as usize % len;
                text[at] = [b'"', b'\\', 0x00, 0x1F, b'\n'][(state >> 16) as usize % 5];
            }
            let expected = text.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            assert_eq!(string_stop(&text), expected, "{text:?}");
        }
    }

    fn parse(text: &str) -> Result<Vec<(Kind, String)>, SyntaxError> {
        let mut tape = Tape::new();
        tape.parse(text.as_bytes())?;
        Ok(tape.nodes.iter().map(|n| (n.kind, raw_text(text.as_bytes(), n).to_string())).collect())
    }

    #[test]
    fn values_keep_their_exact_bytes() {
        let text =
            r#"{"b": {"z": 1, "a": [1.50, -0.0, 1E400, -123123123123123123123123123123]}, "a": "\u00e9\"x"}"#;
        let nodes = parse(text).unwrap();
        assert_eq!(nodes[0].1, text);
        assert_eq!(nodes[2].1, r#"{"z": 1, "a": [1.50, -0.0, 1E400, -123123123123123123123123123123]}"#);
        let numbers: Vec<&str> =
            nodes.iter().filter(|n| matches!(n.0, Kind::Number { .. })).map(|n| n.1.as_str()).collect();
        assert_eq!(numbers, ["1", "1.50", "-0.0", "1E400", "-123123123123123123123123123123"]);
        assert_eq!(nodes.last().unwrap().1, r#""\u00e9\"x""#);
    }

    #[test]
    fn children_skip_nested_containers() {
        let text = br#"{"a": [1, [2, 3], {"x": 4}], "b": null}"#;
        let mut tape = Tape::new();
        tape.parse(text).unwrap();
        let top: Vec<&str> = tape.children(0).map(|i| raw_text(text, tape.node(i))).collect();
        assert_eq!(top, [r#""a""#, r#"[1, [2, 3], {"x": 4}]"#, r#""b""#, "null"]);
        let items: Vec<&str> = tape.children(2).map(|i| raw_text(text, tape.node(i))).collect();
        assert_eq!(items, ["1", "[2, 3]", r#"{"x": 4}"#]);
    }

    #[test]
    fn rfc_8259_strictness() {
        for (bad, expected) in [
            ("{\"a\":\u{c}1}", "form feed"),
            ("[1,\u{c}2]", "form feed"),
            ("01", "leading zero"),
            ("+1", "JSON value"),
            (".5", "JSON value"),
            ("1.", "digit after the decimal point"),
            ("1e", "digit in the exponent"),
            ("NaN", "JSON value"),
            ("\"a\tb\"", "control character"),
            ("\"\\x\"", "invalid escape"),
            ("\"\\u12\"", "four hex digits"),
            ("{\"a\" 1}", "`:`"),
            ("{\"a\":1,}", "field name"),
            ("[1,]", "JSON value"),
            ("[1 2]", "`,` or `]`"),
            ("{} {}", "after the value"),
            ("tru", "`true`"),
            ("\"open", "closing quote"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.message.contains(expected), "{bad:?}: {}", err.message);
        }
        assert!(parse(" \t\r\n{ \"a\" : [ ] }\n").is_ok());
    }

    #[test]
    fn strings_unescape_with_surrogate_pairs_and_lone_surrogates_are_none() {
        let text = r#"["plain", "a\nb\u00e9\ud83d\ude00\/", "\ud800x"]"#;
        let mut tape = Tape::new();
        tape.parse(text.as_bytes()).unwrap();
        let strings: Vec<Option<String>> = tape
            .children(0)
            .map(|i| string_text(text.as_bytes(), tape.node(i)).map(|c| c.into_owned()))
            .collect();
        assert_eq!(strings, [Some("plain".into()), Some("a\nbé😀/".into()), None]);
        assert!(matches!(string_text(text.as_bytes(), tape.node(1)), Some(Cow::Borrowed(_))));
    }

    /// A differential check against serde_json on random token soups: what serde_json accepts we
    /// accept with the same shape, and what we accept it accepts too — except what RFC 8259
    /// allows and serde_json refuses (numbers past f64, nesting past its 128 levels).
    #[test]
    fn agrees_with_serde_json_on_random_inputs() {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            "\t",
            "\r",
            "\u{c}",
            "\"a\"",
            "\"\\n\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"x",
            "\"é\"",
            "1",
            "-0",
            "01",
            "1.5",
            "1e3",
            "-",
            ".",
            "e",
            "true",
            "false",
            "null",
            "nul",
            "\"k\":",
            "\\",
            "\u{1}",
        ];
        let mut rng = crate::test_rng::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        let mut tape = Tape::new();
        let mut agreed = 0;
        for _ in 0..60_000 {
            let len = (next() % 12) as usize;
            let text: String = (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            let ours = tape.parse(text.as_bytes()).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            match (ours, &theirs) {
                (true, Ok(value)) => {
                    agreed += 1;
                    let children = match value {
                        serde_json::Value::Array(items) => items.len(),
                        serde_json::Value::Object(map) => map.len() * 2,
                        _ => 0,
                    };
                    // Objects may repeat a key (serde_json keeps the last); compare arrays only.
                    if value.is_array() {
                        assert_eq!(tape.children(0).count(), children, "{text:?}");
                    }
                }
                (false, Err(_)) => agreed += 1,
                (true, Err(e)) => assert!(e.to_string().contains("out of range"), "{text:?}: {e}"),
                (false, Ok(_)) => panic!("serde_json accepts {text:?}, we refuse it"),
            }
        }
        assert!(agreed > 50_000);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(10_000);
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{}", err.message);
    }
}
