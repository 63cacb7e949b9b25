//! Deterministic building blocks for the emulators' synthetic tenants: a seeded generator and
//! pools of names and text that are hard on a loader (quotes, commas, CR/LF, emoji, CJK).

/// SplitMix64: tiny, fast and good enough for synthetic data; no dependency needed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn derive(parts: &[u64]) -> Rng {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for p in parts {
            rng.0 ^= p.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A score with two decimals in `[lo, hi]`, as scoring models report them.
    pub fn score(&mut self, lo: f64, hi: f64) -> String {
        format!("{:.2}", lo + (hi - lo) * self.unit())
    }
}

pub fn uuid_like(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub const FIRST_NAMES: &[&str] =
    &["Anna", "Jiří", "Zoë", "Łukasz", "Mei", "Oluwaseun", "Søren", "José", "Aiko", "Noah"];
pub const LAST_NAMES: &[&str] =
    &["Nováková", "O'Brien", "Müller", "van der Berg", "Kowalski", "Chen", "García", "Smith, Jr."];
pub const PHRASES: &[&str] = &[
    "Hello, how can I help you today?",
    "My invoice shows a charge of $49.99, but I cancelled on the 3rd.",
    "She said \"it will be fixed by Monday\", which didn't happen.",
    "Thanks! 👍 That worked.",
    "こんにちは、注文の状況を確認したいです。",
    "订单号是 A-1029，请帮我查一下。",
    "Line one\r\nline two, after a CRLF",
    "Unix newline\nin the middle",
    "Comma, separated, values, everywhere",
    "Quote at the end \"",
    "Emoji sequence 👩‍💻🔧✅ and a flag 🇨🇿",
    "Leading and trailing spaces  ",
    "Tab\tinside",
    "Ještě jedna otázka: kdy dorazí zásilka?",
];

pub fn person_name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))
}
