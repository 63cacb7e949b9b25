//! Parsing of single CSV field values into the typed values of a declared column.
//!
//! These run once per field of every row, so they are hand-written, allocation-free and strict:
//! a value either parses exactly or is rejected with a short reason that the decoder turns into a
//! message naming file, line and column. Nothing is guessed — an ambiguous value is a reject.

/// Why a value did not parse; the decoder adds the file, line, column and the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidValue(pub &'static str);

impl std::fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    let mut value = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + (b - b'0') as u32;
    }
    Some(value)
}

/// Parses `YYYY-MM-DD` into days since the Unix epoch.
pub fn parse_date(text: &str) -> Result<i32, InvalidValue> {
    let b = text.trim().as_bytes();
    let days = parse_date_prefix(b)?;
    if b.len() != 10 {
        return Err(InvalidValue("expected a date as YYYY-MM-DD"));
    }
    i32::try_from(days).map_err(|_| InvalidValue("date out of range"))
}

fn parse_date_prefix(b: &[u8]) -> Result<i64, InvalidValue> {
    const SHAPE: InvalidValue = InvalidValue("expected a date as YYYY-MM-DD");
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(SHAPE);
    }
    let year = digits(&b[0..4]).ok_or(SHAPE)? as i64;
    let month = digits(&b[5..7]).ok_or(SHAPE)?;
    let day = digits(&b[8..10]).ok_or(SHAPE)?;
    if !(1..=12).contains(&month) {
        return Err(InvalidValue("month out of range 01-12"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(InvalidValue("day out of range for its month"));
    }
    Ok(days_from_civil(year, month, day))
}

/// Parses a timestamp into microseconds since the Unix epoch, UTC.
///
/// Accepted: RFC 3339 (`2024-01-01T10:00:00Z`, `…+02:00`, `…-0530`, fractional seconds of 1–9
/// digits) and the SQL-ish `2024-01-01 10:00:00[.fff]`; a value without zone is taken as UTC.
/// Fractions finer than a microsecond are truncated (Arrow's cast does the same).
pub fn parse_timestamp_micros(text: &str) -> Result<i64, InvalidValue> {
    const SHAPE: InvalidValue =
        InvalidValue("expected a timestamp as RFC 3339 (2024-01-31T13:45:00Z) or YYYY-MM-DD HH:MM:SS[.fff]");
    let b = text.trim().as_bytes();
    let days = parse_date_prefix(b).map_err(|e| if b.len() < 10 { SHAPE } else { e })?;
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return Err(SHAPE);
    }
    let hour = digits(&b[11..13]).ok_or(SHAPE)?;
    let minute = digits(&b[14..16]).ok_or(SHAPE)?;
    let second = digits(&b[17..19]).ok_or(SHAPE)?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err(InvalidValue("time of day out of range"));
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some((b'.', tail)) = rest.split_first() {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err(InvalidValue("fractional seconds must have 1 to 9 digits"));
        }
        for (i, &d) in tail[..n].iter().enumerate().take(6) {
            micros += (d - b'0') as i64 * 10i64.pow(5 - i as u32);
        }
        rest = &tail[n..];
    }
    let offset_seconds: i64 = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (h, m) = match tz {
                [h1, h2] => (digits(&[*h1, *h2]), Some(0)),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2]), digits(&[*m1, *m2])),
                _ => return Err(InvalidValue("zone offset must be Z, ±HH, ±HHMM or ±HH:MM")),
            };
            let (h, m) = match (h, m) {
                (Some(h), Some(m)) if h <= 23 && m <= 59 => (h as i64, m as i64),
                _ => return Err(InvalidValue("zone offset out of range")),
            };
            let magnitude = h * 3600 + m * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return Err(SHAPE),
    };
    let seconds = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64 - offset_seconds;
    Ok(seconds * MICROS_PER_SECOND + micros)
}

/// Parses a signed integer. A whole-valued decimal or scientific literal (`1500.0`, `1e3`,
/// `-0.0`) is accepted — no value is lost — and decided exactly on its digits, never through a
/// float; `1500.5` is rejected rather than rounded.
pub fn parse_i64(text: &str) -> Result<i64, InvalidValue> {
    parse_whole(text).map(|(value, _)| value)
}

/// Like [`parse_i64`], and says whether the literal was not a plain integer (a lossless
/// coercion the decoders count).
pub fn parse_whole(text: &str) -> Result<(i64, bool), InvalidValue> {
    const WHOLE: InvalidValue = InvalidValue("expected a whole number");
    // Nearly every value is a plain integer that fits (ids, epoch milliseconds, counts): read
    // its digits at once; anything else takes the general path below.
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        let value = digits.iter().fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
        return Ok((if negative { -value } else { value }, false));
    }
    let t = text.trim();
    let (negative, unsigned) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (integral, fraction) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(integral) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(WHOLE);
    }
    if fraction.is_none() && exponent.is_none() {
        let value = t.strip_prefix('+').unwrap_or(t);
        return value
            .parse::<i64>()
            .map(|v| (v, false))
            .map_err(|_| InvalidValue("number out of range for Int64"));
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(digits) {
                return Err(WHOLE);
            }
            // Past ±10^6 only zero can be whole and in range; keep the arithmetic small.
            let magnitude: i64 = digits.parse().unwrap_or(i64::MAX).min(1_000_000);
            if e.starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    // The value is the literal's digits with the decimal point `integral.len() + exponent` digits
    // in; after stripping leading zeros the first digit is non-zero, so the number has `point`
    // digits before its point, and it is whole when every digit from there on is zero.
    let full = format!("{integral}{}", fraction.unwrap_or(""));
    let digits = full.trim_start_matches('0');
    if digits.is_empty() {
        return Ok((0, true));
    }
    let point = integral.len() as i64 + exponent - (full.len() - digits.len()) as i64;
    if point <= 0 || !digits.bytes().skip(point as usize).all(|c| c == b'0') {
        return Err(WHOLE);
    }
    if point > 19 {
        return Err(InvalidValue("number out of range for Int64"));
    }
    let point = point as usize;
    let mut whole = String::with_capacity(point + 1);
    if negative {
        whole.push('-');
    }
    if point <= digits.len() {
        whole.push_str(&digits[..point]);
    } else {
        whole.push_str(digits);
        whole.extend(std::iter::repeat_n('0', point - digits.len()));
    }
    whole.parse::<i64>().map(|v| (v, true)).map_err(|_| InvalidValue("number out of range for Int64"))
}

/// Parses whole milliseconds since the Unix epoch into microseconds.
pub fn parse_epoch_ms_micros(text: &str) -> Result<i64, InvalidValue> {
    epoch_ms_to_micros(parse_i64(text).map_err(|_| InvalidValue("expected milliseconds since the epoch"))?)
}

/// Milliseconds since the Unix epoch as microseconds, if within the Timestamp range.
pub fn epoch_ms_to_micros(millis: i64) -> Result<i64, InvalidValue> {
    millis.checked_mul(1000).ok_or(InvalidValue("epoch milliseconds out of range"))
}

/// Parses a duration `HH:MM:SS` or `HH:MM:SS.fff` (hours of any length, minutes and seconds
/// below 60, an optional leading `-`) into whole milliseconds; `.fff` may have 1 to 3 digits.
pub fn parse_duration_hms_ms(text: &str) -> Result<i64, InvalidValue> {
    const EXPECTED: InvalidValue = InvalidValue("expected a duration as HH:MM:SS");
    let t = text.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t),
    };
    let mut parts = t.split(':');
    let (Some(h), Some(m), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(EXPECTED);
    };
    let (s, fraction) = s.split_once('.').unwrap_or((s, ""));
    let number = |digits: &str, max_len: usize| -> Result<i64, InvalidValue> {
        if digits.is_empty() || digits.len() > max_len || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(EXPECTED);
        }
        digits.parse::<i64>().map_err(|_| EXPECTED)
    };
    let (hours, minutes, seconds) = (number(h, 12)?, number(m, 2)?, number(s, 2)?);
    if minutes >= 60 || seconds >= 60 {
        return Err(InvalidValue("minutes and seconds of a duration must be below 60"));
    }
    let millis = match fraction.len() {
        0 => 0,
        1..=3 => number(fraction, 3)? * 10i64.pow(3 - fraction.len() as u32),
        _ => return Err(InvalidValue("a duration has at most milliseconds (HH:MM:SS.fff)")),
    };
    Ok(sign * (((hours * 60 + minutes) * 60 + seconds) * 1000 + millis))
}

/// Parses a decimal or scientific number; `NaN` and `inf` are accepted as IEEE values.
pub fn parse_f64(text: &str) -> Result<f64, InvalidValue> {
    let t = text.trim();
    let looks_numeric = t.bytes().any(|c| c.is_ascii_digit())
        || matches!(t.to_ascii_lowercase().trim_start_matches(['+', '-']), "nan" | "inf" | "infinity");
    if !looks_numeric {
        return Err(InvalidValue("expected a number"));
    }
    t.parse::<f64>().map_err(|_| InvalidValue("expected a number"))
}

/// Parses `true/false`, `t/f`, `yes/no`, `y/n`, `1/0` in any letter case.
pub fn parse_bool(text: &str) -> Result<bool, InvalidValue> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err(InvalidValue("expected a boolean (true/false, 1/0, yes/no)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_1_2024: i64 = 1_704_067_200; // seconds

    #[test]
    fn epoch_arithmetic_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 1) * 86_400, JAN_1_2024);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(parse_date("2024-02-29").unwrap(), 19_782);
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let base = JAN_1_2024 * 1_000_000 + (10 * 3600) * 1_000_000;
        for (text, expected) in [
            ("2024-01-01T10:00:00Z", base),
            ("2024-01-01t10:00:00z", base),
            ("2024-01-01T10:00:00.5Z", base + 500_000),
            ("2024-01-01T10:00:00.123456Z", base + 123_456),
            ("2024-01-01T10:00:00.123456789Z", base + 123_456),
            ("2024-01-01T12:00:00+02:00", base),
            ("2024-01-01T12:00:00+0200", base),
            ("2024-01-01T12:00:00+02", base),
            ("2024-01-01T04:30:00-05:30", base),
            ("2024-01-01 10:00:00", base),
            ("2024-01-01 10:00:00.250", base + 250_000),
            ("2024-01-01T10:00:00", base),
            (" 2024-01-01T10:00:00Z ", base),
            ("1969-12-31T23:59:59.5Z", -500_000),
        ] {
            assert_eq!(parse_timestamp_micros(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_timestamps_are_rejected_with_a_reason() {
        for text in [
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T10:00:00.Z",
            "2024-01-01T10:00:00+25:00",
            "2024-01-01T10:00:00 UTC",
            "01/02/2024 10:00",
            "yesterday",
            "2024-01-01T10:00:00.1234567890Z",
        ] {
            assert!(parse_timestamp_micros(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn epoch_milliseconds_become_microseconds() {
        assert_eq!(parse_epoch_ms_micros("1704067200000"), Ok(JAN_1_2024 * 1_000_000));
        assert_eq!(parse_epoch_ms_micros("-1"), Ok(-1000));
        assert_eq!(epoch_ms_to_micros(1_762_787_749_131), Ok(1_762_787_749_131_000));
        assert!(parse_epoch_ms_micros("2024-01-01").is_err());
        assert!(epoch_ms_to_micros(i64::MAX / 10).is_err());
    }

    #[test]
    fn integers_are_strict_but_lossless_decimals_pass() {
        assert_eq!(parse_i64("42"), Ok(42));
        assert_eq!(parse_i64("-7"), Ok(-7));
        assert_eq!(parse_i64("+7"), Ok(7));
        assert_eq!(parse_i64("1500.0"), Ok(1500));
        assert_eq!(parse_i64(" 3 "), Ok(3));
        assert_eq!(parse_i64("9223372036854775807"), Ok(i64::MAX));
        for bad in
            ["1500.5", "12a", "", "-", "9223372036854775808", "1,000", "1.", "1e", "1e-1", ".5", "1.5e0"]
        {
            assert!(parse_i64(bad).is_err(), "{bad}");
        }
    }

    /// Plain integers of every length agree with the standard parser, on both sides of the
    /// 18-digit fast path and of i64's range.
    #[test]
    fn plain_integers_read_as_the_standard_parser_reads_them() {
        for digits in 1..=20 {
            for lead in ['1', '9', '0'] {
                let text: String =
                    std::iter::once(lead).chain("987654321098765432109".chars()).take(digits).collect();
                for sign in ["", "-", "+"] {
                    let text = format!("{sign}{text}");
                    let expected = text.parse::<i64>().map(|v| (v, false)).ok();
                    assert_eq!(parse_whole(&text).ok(), expected, "{text}");
                }
            }
        }
        for edge in ["9223372036854775807", "-9223372036854775808", "-0", "007"] {
            assert_eq!(parse_whole(edge), Ok((edge.parse().unwrap(), false)), "{edge}");
        }
        for bad in ["", "-", "+", "9223372036854775808", "-9223372036854775809", "1-2", "--1"] {
            assert!(parse_whole(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_valued_literals_are_integers_decided_on_their_digits() {
        for (text, expected) in [
            ("5400.0", 5400),
            ("1e3", 1000),
            ("1E+3", 1000),
            ("-0.0", 0),
            ("0e5", 0),
            ("12.5e1", 125),
            ("1250e-1", 125),
            ("001.00", 1),
            ("9.223372036854775807e18", i64::MAX),
            ("-9223372036854775808.000", i64::MIN),
            ("123456789012345678e0", 123_456_789_012_345_678),
        ] {
            assert_eq!(parse_whole(text), Ok((expected, true)), "{text}");
        }
        assert_eq!(parse_whole("42"), Ok((42, false)));
        for bad in ["1e-3", "12.34e1", "1e19", "9223372036854775808.0", "1e1000000000"] {
            assert!(parse_whole(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn floats_accept_decimal_scientific_and_ieee_specials() {
        assert_eq!(parse_f64("0.25"), Ok(0.25));
        assert_eq!(parse_f64("-1e3"), Ok(-1000.0));
        assert_eq!(parse_f64("7"), Ok(7.0));
        assert!(parse_f64("NaN").unwrap().is_nan());
        assert_eq!(parse_f64("inf"), Ok(f64::INFINITY));
        for bad in ["abc", "1,5", "", "0x10", "infinite"] {
            assert!(parse_f64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_as_hours_minutes_seconds_become_milliseconds() {
        assert_eq!(parse_duration_hms_ms("00:00:00"), Ok(0));
        assert_eq!(parse_duration_hms_ms("01:02:03"), Ok(3_723_000));
        assert_eq!(parse_duration_hms_ms("123:59:59.5"), Ok(((123 * 60 + 59) * 60 + 59) * 1000 + 500));
        assert_eq!(parse_duration_hms_ms(" 0:00:01.042 "), Ok(1042));
        assert_eq!(parse_duration_hms_ms("-00:00:02"), Ok(-2000));
        for bad in ["", "12", "1:2", "01:60:00", "01:00:60", "a:00:00", "01:00:00.1234", "1:2:3:4"] {
            assert!(parse_duration_hms_ms(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn booleans_in_common_spellings() {
        for t in ["true", "TRUE", "1", "yes", "Y", "t"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "False", "0", "no", "N", "f"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
    }
}
