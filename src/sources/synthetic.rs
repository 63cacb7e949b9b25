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

/// Words of customer-service chat, most frequent first: [`chat_text`] draws from the head far
/// more often than from the tail, as real text does (Zipf-like), so messages share words but
/// hardly ever a whole sentence.
const CHAT_WORDS: &str = "the I to you and a my is it for of that in on this we your have can be \
    with not order but was me please what at will so if do are no as just an get now there when \
    help thanks need from one account would here again still they our about which how did time \
    know like back all out has been up delivery any could payment invoice package card refund day \
    week email see sent number check problem issue app password login yesterday today tomorrow \
    address phone update change cancel subscription plan price charged twice store item items \
    product size colour return label courier tracking arrived damaged missing wrong broken box \
    screen error message website page link code discount voucher coupon balance bank transfer \
    receipt confirmation reference customer support agent manager team colleague sorry apologies \
    understand appreciate patience moment minute hour morning afternoon evening Monday Tuesday \
    Wednesday Thursday Friday weekend holiday warehouse shipping express standard free cost fee \
    extra tax VAT total amount paid pending approved declined blocked reset verify verified \
    identity document photo upload download install restart settings notification reminder \
    contract renewal upgrade downgrade monthly yearly trial expired active closed open ticket \
    case status escalate replacement exchange warranty repair technician appointment slot \
    available unavailable stock backorder preorder estimate late early quickly actually really \
    maybe probably already never always sometimes usually again also only very much more less \
    first last next previous other another same different new old good great fine okay bad \
    terrible happy unhappy frustrated confused sure certain possible impossible easy difficult";

/// A word of [`CHAT_WORDS`], the frequent ones far more often.
fn chat_word<'a>(rng: &mut Rng, words: &[&'a str]) -> &'a str {
    // u³ puts about half the draws in the first eighth of the list.
    let u = rng.unit();
    words[((u * u * u) * words.len() as f64) as usize % words.len()]
}

/// One chat message as people write them: one or two sentences of 3–16 words from a skewed
/// vocabulary, with order numbers, amounts, dates and names mixed in, and now and then one of
/// the hard cases of [`PHRASES`] (quotes, CR/LF, emoji, CJK). Nearly every message is unique,
/// as in a real contact center, so a loader's dictionary encoding cannot lean on repetition.
pub fn chat_text(rng: &mut Rng) -> String {
    static WORDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| CHAT_WORDS.split_whitespace().collect());
    let mut text = String::new();
    for sentence in 0..rng.range(1, 2) {
        if sentence > 0 {
            text.push(' ');
        }
        if rng.chance(6) {
            text.push_str(rng.pick(PHRASES));
            continue;
        }
        let length = rng.range(3, 16);
        for i in 0..length {
            if i > 0 {
                text.push(if rng.chance(4) { ',' } else { ' ' });
                if text.ends_with(',') {
                    text.push(' ');
                }
            }
            match rng.below(100) {
                0..=2 => text.push_str(&format!(
                    "#{}-{:06}",
                    (b'A' + rng.below(26) as u8) as char,
                    rng.below(1_000_000)
                )),
                3..=4 => text.push_str(&format!("${}.{:02}", rng.range(1, 999), rng.below(100))),
                5 => text.push_str(&format!("{}/{}", rng.range(1, 28), rng.range(1, 12))),
                6 => text.push_str(rng.pick(FIRST_NAMES)),
                _ => {
                    let word = chat_word(rng, words);
                    if i == 0 {
                        let mut chars = word.chars();
                        if let Some(first) = chars.next() {
                            text.extend(first.to_uppercase());
                            text.push_str(chars.as_str());
                        }
                    } else {
                        text.push_str(word);
                    }
                }
            }
        }
        text.push(match rng.below(10) {
            0..=1 => '?',
            2 => '!',
            _ => '.',
        });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_nearly_always_unique_yet_keeps_the_hard_cases() {
        let mut rng = Rng::new(7);
        let texts: Vec<String> = (0..20_000).map(|_| chat_text(&mut rng)).collect();
        let distinct: std::collections::HashSet<&String> = texts.iter().collect();
        assert!(distinct.len() > 19_000, "{} distinct of 20,000", distinct.len());
        let mean = texts.iter().map(String::len).sum::<usize>() / texts.len();
        assert!((30..200).contains(&mean), "mean length {mean}");
        for hard in ["\r\n", "\"", "👍", "こんにちは", ","] {
            assert!(texts.iter().any(|t| t.contains(hard)), "{hard:?}");
        }
    }
}
