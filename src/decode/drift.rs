//! What a file showed about its declaration: fields it has that the declaration lacks, declared
//! columns it never carried, values converted without loss, and values that did not fit and were
//! kept in `_extra` — each counted by field path, with an example. One [`Drift`] per file, merged
//! per dataset and window into the window record, summed by `cxlake drift` and `status`.
//!
//! Paths are generic (`ratings[].comment`): one entry per field, not per list index; the example
//! keeps one concrete path (`ratings[3].comment`). Nothing here holds a value the platform sent
//! (values can be personal data): only names, counts and why a value did not fit.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::LocalTimeCounts;

/// Distinct paths kept per map; past it, values are still landed and kept, only not itemised.
pub const MAX_PATHS: usize = 200;

/// A field path seen some number of times, with one concrete example.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCount {
    /// Values seen (a field inside a list counts once per item).
    pub values: u64,
    /// One concrete path (`ratings[3].comment`), or the path with why it did not fit.
    pub example: String,
    /// Whether the values were kept (in `_extra`); false for a CSV column of a dataset without
    /// `_extra`, whose values are not loaded (they stay in the raw archive).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub kept: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// The lossless conversions of one field, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coercions {
    /// A JSON value other than a string (a list, an object, a number, a boolean) kept as its exact
    /// JSON text in a `Utf8` column.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub json_as_text: u64,
    /// A whole-valued number with a fraction or exponent (`5400.0`, `1e3`, `-0.0`) as an integer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub whole_number: u64,
    /// A single value where a list is declared, as a list of one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub list_of_one: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Coercions {
    pub fn total(&self) -> u64 {
        self.json_as_text + self.whole_number + self.list_of_one
    }

    fn add(&mut self, other: &Coercions) {
        self.json_as_text += other.json_as_text;
        self.whole_number += other.whole_number;
        self.list_of_one += other.list_of_one;
    }
}

/// One kind of lossless conversion (see [`Coercions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coercion {
    JsonAsText,
    WholeNumber,
    ListOfOne,
}

/// What one file (or a window's files of one dataset, merged) showed about its declaration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Fields the declaration does not have, by generic path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undeclared: BTreeMap<String, FieldCount>,
    /// Declared columns the file never carried: not in its header, or no record had the field.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub absent: BTreeSet<String>,
    /// Values converted without loss, by generic path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub coerced: BTreeMap<String, Coercions>,
    /// Values that did not fit their column: landed as null, kept exactly in `_extra`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept_in_extra: BTreeMap<String, FieldCount>,
    /// Local times that fell in a DST change (Sparkcentral).
    #[serde(default, skip_serializing_if = "LocalTimeCounts::is_zero")]
    pub local_times: LocalTimeCounts,
    /// Whether some distinct paths were not itemised (more than [`MAX_PATHS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self == &Drift::default()
    }

    /// Counts one value of an undeclared field at `generic` (first seen at `example`).
    pub fn undeclared(&mut self, generic: &str, example: impl FnOnce() -> String, kept: bool) {
        count(&mut self.undeclared, &mut self.truncated, generic, example, kept);
    }

    /// Counts one value that did not fit and was kept in `_extra`.
    pub fn kept(&mut self, generic: &str, example: impl FnOnce() -> String) {
        count(&mut self.kept_in_extra, &mut self.truncated, generic, example, true);
    }

    /// Counts one lossless conversion.
    pub fn coerced(&mut self, generic: &str, kind: Coercion) {
        if !self.coerced.contains_key(generic) && self.coerced.len() >= MAX_PATHS {
            self.truncated = true;
            return;
        }
        let entry = match self.coerced.get_mut(generic) {
            Some(entry) => entry,
            None => self.coerced.entry(generic.to_string()).or_default(),
        };
        match kind {
            Coercion::JsonAsText => entry.json_as_text += 1,
            Coercion::WholeNumber => entry.whole_number += 1,
            Coercion::ListOfOne => entry.list_of_one += 1,
        }
    }

    /// Adds another file's drift of the same dataset: counts add up; a column is absent only if
    /// it was absent from every file (`first` says `self` holds nothing yet).
    pub fn merge(&mut self, other: &Drift, first: bool) {
        self.add_counts(other);
        if first {
            self.absent = other.absent.clone();
        } else {
            self.absent = self.absent.intersection(&other.absent).cloned().collect();
        }
    }

    /// Adds another part of the same file (a chunk decoded on another worker): counts add up,
    /// the first example of a path stays, absent columns are left as they are.
    pub fn add_counts(&mut self, other: &Drift) {
        for (path, seen) in &other.undeclared {
            count_many(&mut self.undeclared, &mut self.truncated, path, seen);
        }
        for (path, seen) in &other.kept_in_extra {
            count_many(&mut self.kept_in_extra, &mut self.truncated, path, seen);
        }
        for (path, coerced) in &other.coerced {
            if !self.coerced.contains_key(path) && self.coerced.len() >= MAX_PATHS {
                self.truncated = true;
                continue;
            }
            self.coerced.entry(path.clone()).or_default().add(coerced);
        }
        self.local_times.ambiguous += other.local_times.ambiguous;
        self.local_times.skipped += other.local_times.skipped;
        self.truncated |= other.truncated;
    }

    /// All files' drift merged.
    pub fn merged<'a>(files: impl IntoIterator<Item = &'a Drift>) -> Drift {
        let mut all = Drift::default();
        for (i, drift) in files.into_iter().enumerate() {
            all.merge(drift, i == 0);
        }
        all
    }

    pub fn coerced_values(&self) -> u64 {
        self.coerced.values().map(Coercions::total).sum()
    }

    pub fn kept_values(&self) -> u64 {
        self.kept_in_extra.values().map(|c| c.values).sum()
    }

    /// The dataset's summary for one line of a log or a table: `3 undeclared, 1 absent, 12 kept
    /// in _extra, 40 coerced`; empty when there is nothing to say.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.undeclared.is_empty() {
            parts.push(format!("{} undeclared", self.undeclared.len()));
        }
        if !self.absent.is_empty() {
            parts.push(format!("{} absent", self.absent.len()));
        }
        let kept = self.kept_values();
        if kept > 0 {
            parts.push(format!("{kept} kept in _extra"));
        }
        let coerced = self.coerced_values();
        if coerced > 0 {
            parts.push(format!("{coerced} coerced"));
        }
        parts.join(", ")
    }
}

fn count(
    map: &mut BTreeMap<String, FieldCount>,
    truncated: &mut bool,
    generic: &str,
    example: impl FnOnce() -> String,
    kept: bool,
) {
    if let Some(entry) = map.get_mut(generic) {
        entry.values += 1;
    } else if map.len() >= MAX_PATHS {
        *truncated = true;
    } else {
        map.insert(generic.to_string(), FieldCount { values: 1, example: example(), kept });
    }
}

/// Adds another part's count of one path (its example kept only if the path is new here).
fn count_many(
    map: &mut BTreeMap<String, FieldCount>,
    truncated: &mut bool,
    generic: &str,
    seen: &FieldCount,
) {
    if let Some(entry) = map.get_mut(generic) {
        entry.values += seen.values;
    } else if map.len() >= MAX_PATHS {
        *truncated = true;
    } else {
        map.insert(generic.to_string(), seen.clone());
    }
}

/// Appends `text` to `out` as a JSON string (quotes, escapes for `"`, `\` and control characters).
pub fn push_json_string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.push('"');
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..at]);
        let c = rest[at..].chars().next().expect("found a char");
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_intersects_absent_columns() {
        let mut a = Drift::default();
        a.undeclared("x", || "x".into(), true);
        a.kept("tags", || "tags: expected a string".into());
        a.coerced("n", Coercion::WholeNumber);
        a.absent.extend(["p".to_string(), "q".to_string()]);
        let mut b = a.clone();
        b.absent.remove("p");
        b.coerced("n", Coercion::ListOfOne);
        let merged = Drift::merged([&a, &b]);
        assert_eq!(merged.undeclared["x"].values, 2);
        assert_eq!(merged.kept_values(), 2);
        assert_eq!(merged.coerced["n"], Coercions { json_as_text: 0, whole_number: 2, list_of_one: 1 });
        assert_eq!(merged.absent.iter().collect::<Vec<_>>(), ["q"]);
        assert_eq!(merged.summary(), "1 undeclared, 1 absent, 2 kept in _extra, 3 coerced");
        let text = serde_json::to_string(&merged).unwrap();
        assert_eq!(serde_json::from_str::<Drift>(&text).unwrap(), merged);
    }

    #[test]
    fn json_strings_are_escaped_as_json() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), "a\"b\\c\nd\u{1}é");
    }
}
