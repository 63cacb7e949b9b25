//! `cxlake schema draft`: a first schema for a platform that publishes no column list (Khoros,
//! Loop) or a tenant with its own columns, proposed from a sample file — so the columns can be
//! declared in minutes and the declaration, not run-time inference, decides every type.
//!
//! Every column of the sample gets a `[[columns]]` table: its name by the snake_case rule (with
//! the original as `source_name` when two names would collide), the narrowest type every sampled
//! value parses as — Boolean, Int64 (or milliseconds from `HH:MM:SS`, or an epoch-millisecond
//! timestamp for `*_at`/`*time*` integers of that size), Float64, Date32, timestamp, lists of
//! those — else Utf8; every column nullable, descriptions empty for the human to write. Values are
//! parsed with the same parsers the decoders use, so a draft that loads decodes the sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::snake_case;
use super::value;

/// What the sampled values of one column allow.
#[derive(Debug, Clone)]
struct Observed {
    /// The name in the file.
    source: String,
    values: u64,
    /// Still possible after every value seen so far.
    boolean: bool,
    int: bool,
    float: bool,
    date: bool,
    timestamp: bool,
    duration: bool,
    /// JSON: values were arrays (of items observed in `items`), objects, or scalars.
    arrays: bool,
    objects: bool,
    scalars: bool,
    items: Option<Box<Observed>>,
    /// Integer values between 2001 and 2286 as epoch milliseconds.
    epoch_ms: bool,
}

impl Observed {
    fn new(source: &str) -> Observed {
        Observed {
            source: source.to_string(),
            values: 0,
            boolean: true,
            int: true,
            float: true,
            date: true,
            timestamp: true,
            duration: true,
            arrays: false,
            objects: false,
            scalars: false,
            items: None,
            epoch_ms: true,
        }
    }

    fn text(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        self.values += 1;
        self.scalars = true;
        let word = text.trim().to_ascii_lowercase();
        self.boolean &= matches!(word.as_str(), "true" | "false" | "yes" | "no");
        let int = value::parse_i64(text);
        self.int &= int.is_ok();
        self.epoch_ms &= int.is_ok_and(|v| (978_307_200_000..10_000_000_000_000).contains(&v));
        self.float &= value::parse_f64(text).is_ok();
        self.date &= text.trim().len() == 10 && value::parse_date(text).is_ok();
        self.timestamp &= value::parse_timestamp_micros(text).is_ok();
        self.duration &= text.contains(':') && value::parse_duration_hms_ms(text).is_ok();
    }

    fn json(&mut self, value: &Value) {
        match value {
            Value::Null => {}
            Value::String(text) => self.text(text),
            Value::Bool(_) => {
                self.values += 1;
                self.scalars = true;
                (self.int, self.float, self.date, self.timestamp, self.duration, self.epoch_ms) =
                    (false, false, false, false, false, false);
            }
            Value::Number(n) => {
                self.values += 1;
                self.scalars = true;
                self.boolean = false;
                self.date = false;
                self.timestamp = false;
                self.duration = false;
                self.int &= n.is_i64();
                self.epoch_ms &=
                    n.as_i64().is_some_and(|v| (978_307_200_000..10_000_000_000_000).contains(&v));
            }
            Value::Array(items) => {
                self.values += 1;
                self.arrays = true;
                let observed = self.items.get_or_insert_with(|| Box::new(Observed::new("item")));
                for item in items {
                    observed.json(item);
                }
            }
            Value::Object(_) => {
                self.values += 1;
                self.objects = true;
            }
        }
    }

    /// The proposed type and encoding.
    fn proposal(&self, name: &str) -> (String, Option<&'static str>) {
        if self.objects || (self.arrays && self.scalars) {
            return ("Utf8".into(), Some("json_text"));
        }
        if self.arrays {
            let (item, encoding) = match &self.items {
                Some(items) if items.values > 0 && !items.objects && !items.arrays => items.proposal(name),
                _ => return ("Utf8".into(), Some("json_text")),
            };
            return (format!("List({item})"), encoding);
        }
        let timey = name.ends_with("_at") || name.contains("time") || name.contains("date");
        match () {
            _ if self.values == 0 => ("Utf8".into(), None),
            _ if self.boolean => ("Boolean".into(), None),
            _ if self.int && self.epoch_ms && timey => {
                ("Timestamp(Microsecond, \"UTC\")".into(), Some("epoch_ms"))
            }
            _ if self.int => ("Int64".into(), None),
            _ if self.float => ("Float64".into(), None),
            _ if self.date => ("Date32".into(), None),
            _ if self.timestamp => ("Timestamp(Microsecond, \"UTC\")".into(), None),
            _ if self.duration => ("Int64".into(), Some("duration_hms")),
            _ => ("Utf8".into(), None),
        }
    }
}

/// Columns in the order they were first seen (a CSV's header order; a JSON record's keys come
/// in name order).
#[derive(Default)]
pub struct Sample {
    columns: Vec<Observed>,
    by_name: BTreeMap<String, usize>,
    rows: u64,
}

impl Sample {
    fn column(&mut self, name: &str) -> &mut Observed {
        let index = *self.by_name.entry(name.to_string()).or_insert_with(|| {
            self.columns.push(Observed::new(name));
            self.columns.len() - 1
        });
        &mut self.columns[index]
    }

    /// Observes a CSV file's header and up to `limit` records.
    pub fn csv(input: impl std::io::Read, limit: u64) -> Result<Sample, String> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| format!("cannot read the header: {e}"))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mut sample = Sample::default();
        for name in &header {
            sample.column(name);
        }
        for record in reader.records().take(limit as usize) {
            let record = record.map_err(|e| format!("cannot read a record: {e}"))?;
            sample.rows += 1;
            for (name, field) in header.iter().zip(record.iter()) {
                sample.column(name).text(field);
            }
        }
        Ok(sample)
    }

    /// Observes up to `limit` objects of a JSON array, streaming: one object in memory at a
    /// time, the rest of the array skipped without being kept.
    pub fn json_array(input: impl std::io::Read, limit: u64) -> Result<Sample, String> {
        struct Records<'a> {
            sample: &'a mut Sample,
            limit: u64,
        }
        impl<'de> serde::de::Visitor<'de> for Records<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON array of objects")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while self.sample.rows < self.limit {
                    let Some(record) = seq.next_element::<serde_json::Map<String, Value>>()? else {
                        return Ok(());
                    };
                    self.sample.rows += 1;
                    for (name, value) in &record {
                        self.sample.column(name).json(value);
                    }
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
        let mut sample = Sample::default();
        let mut deserializer = serde_json::Deserializer::from_reader(std::io::BufReader::new(input));
        serde::Deserializer::deserialize_seq(&mut deserializer, Records { sample: &mut sample, limit })
            .map_err(|e| format!("not a JSON array of objects: {e}"))?;
        Ok(sample)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The schema draft as TOML text.
    pub fn draft(&self, source: &str, dataset: &str, file: &str, origin: &str) -> String {
        let mut names: Vec<String> = Vec::new();
        let mut columns = String::new();
        for observed in &self.columns {
            let mut name = snake_case(&observed.source);
            if name.is_empty() {
                name = "column".into();
            }
            let base = name.clone();
            let mut n = 2;
            while names.contains(&name) {
                name = format!("{base}_{n}");
                n += 1;
            }
            // The snake_case rule finds the column unless the name had to change.
            let source_name = (name != base || name == "column").then_some(observed.source.as_str());
            names.push(name.clone());
            let (column_type, encoding) = observed.proposal(&name);
            let _ = writeln!(columns, "\n[[columns]]\nname = {}", quote(&name));
            if let Some(source_name) = source_name {
                let _ = writeln!(columns, "source_name = {}", quote(source_name));
            }
            let _ = writeln!(columns, "type = '{column_type}'");
            if let Some(encoding) = encoding {
                let _ = writeln!(columns, "encoding = \"{encoding}\"");
            }
            let _ = writeln!(columns, "nullable = true\npii = false\ndescription = \"\"");
        }
        let key = names.first().cloned().unwrap_or_default();
        format!(
            "# Draft schema for {source}.{dataset}, proposed from {origin} ({} rows sampled).\n\
             # Review every type, mark personal data (pii = true), write the descriptions, choose the\n\
             # key and the kind, then save as <DIR>/{source}/{dataset}.toml and pass --schemas DIR.\n\n\
             source = {}\ndataset = {}\nfile = {}\nkey = [{}]\nkind = \"entities\"\ndescription = \"\"\n{columns}",
            self.rows,
            quote(source),
            quote(dataset),
            quote(file),
            quote(&key),
        )
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_draft_proposes_the_narrowest_types_and_loads() {
        let csv = "AGENT_ID,Agent Name,Avg. Handle Time (s),Handle,Day,Seen At,Active,Score,agent_name\n\
                   1,Ann,12,00:01:02,2024-03-01,2024-03-01T10:00:00Z,true,1.5,x\n\
                   2,\"Bo, B\",,01:00:00,2024-03-02,2024-03-01 11:00:00,no,2,y\n";
        let sample = Sample::csv(csv.as_bytes(), 100).unwrap();
        let text = sample.draft("acme", "agent", "agents.csv", "agents.csv");
        let schema = crate::schema::parse_schema("draft", &text).unwrap();
        let types: Vec<(String, String)> =
            schema.columns.iter().map(|c| (c.name.clone(), c.column_type.to_string())).collect();
        let expect =
            |name: &str, t: &str| assert!(types.contains(&(name.into(), t.into())), "{name} {t}: {types:?}");
        expect("agent_id", "Int64");
        expect("agent_name", "Utf8");
        expect("avg_handle_time_s", "Int64");
        expect("handle", "Int64");
        expect("day", "Date32");
        expect("seen_at", "Timestamp(Microsecond, \"UTC\")");
        expect("active", "Boolean");
        expect("score", "Float64");
        expect("agent_name_2", "Utf8");
        assert!(text.contains("source_name = \"agent_name\""), "the collision keeps its file name:\n{text}");
        assert!(text.contains("encoding = \"duration_hms\""));
        assert_eq!(schema.key, ["agent_id"]);
    }

    #[test]
    fn a_json_draft_knows_lists_objects_and_epoch_milliseconds() {
        let json = r#"[{"id": 1, "createdAt": 1709287200000, "tags": ["a"], "form": {"x": 1}, "n": "7"},
                       {"id": 2, "createdAt": 1709287300000, "tags": [], "form": null, "n": "8"}]"#;
        let sample = Sample::json_array(json.as_bytes(), 100).unwrap();
        let text = sample.draft("acme", "thing", "things.json", "things.json");
        let schema = crate::schema::parse_schema("draft", &text).unwrap();
        let by_name = |n: &str| schema.columns.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by_name("created_at").column_type.to_string(), "Timestamp(Microsecond, \"UTC\")");
        assert_eq!(by_name("tags").column_type.to_string(), "List(Utf8)");
        assert_eq!(by_name("form").encoding, crate::schema::Encoding::JsonText);
        assert_eq!(by_name("n").column_type.to_string(), "Int64", "numbers sent as text");
    }
}
