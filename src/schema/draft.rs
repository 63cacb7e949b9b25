//! `cxlake schema draft`: a first schema for a platform that publishes no column list (Khoros,
//! Loop) or a tenant with its own columns, proposed from a sample file — so the columns can be
//! declared in minutes and the declaration, not run-time inference, decides every type.
//!
//! Every column of the sample gets a `[[columns]]` table: its name by the snake_case rule (with
//! the original as `source_name` when two names would collide), the narrowest type every sampled
//! value parses as — Boolean, Int64 (or milliseconds from `HH:MM:SS`, or an epoch-millisecond
//! timestamp for `*_at`/`*time*` integers of that size), Float64, Date32, timestamp, lists of
//! those — else Utf8; every column nullable, descriptions empty for the human to write. Values are
//! parsed with the same parsers the decoders use, so a draft that loads decodes the sample. The
//! files are read by decode's readers ([`crate::decode::sample_file`]); this module only observes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::value;
use super::{snake_case, Column, ColumnType, DatasetKind, DatasetSchema, Encoding, FileFormat, EXTRA_COLUMN};

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
    /// Objects: their members, observed the same way.
    fields: Option<Box<Sample>>,
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
            fields: None,
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
            Value::Object(members) => {
                self.values += 1;
                self.objects = true;
                self.fields.get_or_insert_with(Default::default).record(members);
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
#[derive(Debug, Clone, Default)]
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

    /// Observes the columns of a CSV header (in file order), before any record.
    pub fn header(&mut self, names: &[String]) {
        for name in names {
            self.column(name);
        }
    }

    /// Observes one CSV record: `(column name, field text)` pairs.
    pub fn text_record<'a>(&mut self, fields: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.rows += 1;
        for (name, field) in fields {
            self.column(name).text(field);
        }
    }

    /// Observes one record given as a JSON object.
    pub fn record(&mut self, record: &serde_json::Map<String, Value>) {
        self.rows += 1;
        for (name, value) in record {
            self.column(name).json(value);
        }
    }

    /// The column observed under `name`.
    fn find(&self, name: &str) -> Option<&Observed> {
        self.by_name.get(name).map(|i| &self.columns[*i])
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

/// What the lake says about a declaration besides the sampled values: the fields whose values
/// did not fit (by generic path), and where the sample came from.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub mismatched: std::collections::BTreeSet<String>,
    /// `the raw archive of 3 windows`, for the header.
    pub origin: String,
    /// Whether whole records were sampled (raw files), so a declared column without values was
    /// really never sent (not so when only `_extra` was read).
    pub whole_records: bool,
}

impl Sample {
    /// A declaration redrawn from the sample, merged with `current`: declared columns keep their
    /// names, types, descriptions and flags — except a scalar column some of whose values did not
    /// fit (`evidence`), which gets the type every sampled value parses as, with a comment saying
    /// what it was; declared columns no sampled row had are marked; fields the declaration lacks
    /// (members of declared structs too) are added, nullable, with the narrowest type every sampled
    /// value parses as and an empty description to write.
    pub fn redraw(&self, current: &DatasetSchema, evidence: &Evidence) -> String {
        let mut out = format!(
            "# {} redrawn from {} ({} rows sampled), merged with its declaration {} ({}).\n\
             # Review the marked columns, write their descriptions and pii flags, save as\n\
             # <DIR>/{}/{}.toml, then `cxlake replay {} --dest <lake> --schemas <DIR>`.\n\n",
            current.qualified_name(),
            evidence.origin,
            self.rows,
            current.declaration.fingerprint,
            current.declaration.origin,
            current.source,
            current.dataset,
            current.source,
        );
        let format = match current.format {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Xlsx => "xlsx",
        };
        let kind = match current.kind {
            DatasetKind::Entities => "entities",
            DatasetKind::Events => "events",
        };
        let keys: Vec<String> = current.key.iter().map(|k| quote(k)).collect();
        let _ = writeln!(out, "source = {}\ndataset = {}", quote(&current.source), quote(&current.dataset));
        let _ = writeln!(out, "file = {}\nformat = \"{format}\"\nkind = \"{kind}\"", quote(&current.file));
        let _ = writeln!(out, "key = [{}]", keys.join(", "));
        if let Some(version) = &current.version {
            let _ = writeln!(out, "version = {}", quote(version));
        }
        let _ = writeln!(out, "description = {}", quote(&current.description));
        // Which sampled field lands in which declared column (by the decoders' own rule).
        let mut claimed: BTreeMap<usize, &Observed> = BTreeMap::new();
        let mut unclaimed: Vec<&Observed> = Vec::new();
        for observed in &self.columns {
            match current.column_for_field(&observed.source) {
                Some(index) => {
                    claimed.entry(index).or_insert(observed);
                }
                None if observed.source == EXTRA_COLUMN => {}
                None => unclaimed.push(observed),
            }
        }
        for (index, column) in current.columns.iter().enumerate() {
            if column.name == EXTRA_COLUMN {
                continue;
            }
            let observed = claimed.get(&index).copied();
            let mut note = Vec::new();
            if evidence.whole_records && column.fill.is_none() && observed.is_none_or(|o| o.values == 0) {
                note.push(format!("not seen: no value in the {} sampled rows", self.rows));
            }
            let sent = observed.map_or(column.name.as_str(), |o| o.source.as_str());
            let mismatched = evidence.mismatched.contains(sent) || evidence.mismatched.contains(&column.name);
            let mut retyped = None;
            if let (true, true, Some(observed)) = (mismatched, column.column_type.is_scalar(), observed) {
                let (proposed, encoding) = observed.proposal(&column.name);
                if proposed != column.column_type.to_string() || encoding.is_some() {
                    note.push(format!(
                        "was {}: values did not fit it (kept in _extra); proposed from every sampled value",
                        column.column_type
                    ));
                    retyped = Some((proposed, encoding));
                }
            }
            emit_column(&mut out, column, "columns", retyped, observed, &note);
        }
        let mut names: Vec<String> = current.columns.iter().map(|c| c.name.clone()).collect();
        for observed in unclaimed {
            let name = unique_name(&mut names, &observed.source);
            let note = format!("new: in {} of {} sampled rows; describe it", observed.values, self.rows);
            emit_new(&mut out, "columns", &name, observed, &note);
        }
        out
    }
}

/// A name by the snake_case rule, made unique among `names` (and added to them).
fn unique_name(names: &mut Vec<String>, source: &str) -> String {
    let mut base = snake_case(source);
    if base.is_empty() {
        base = "column".into();
    }
    let mut name = base.clone();
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    names.push(name.clone());
    name
}

/// A field the declaration lacks, as a `[[table]]` with its proposed type (members of objects
/// become `[[table.fields]]`).
fn emit_new(out: &mut String, table: &str, name: &str, observed: &Observed, note: &str) {
    let _ = writeln!(out, "\n# {note}\n[[{table}]]\nname = {}", quote(name));
    if snake_case(&observed.source) != name || name == "column" {
        let _ = writeln!(out, "source_name = {}", quote(&observed.source));
    }
    let members = object_members(observed);
    let (column_type, encoding) = match &members {
        Some((list, _)) => ((if *list { "List(Struct)" } else { "Struct" }).to_string(), None),
        None => observed.proposal(name),
    };
    let _ = writeln!(out, "type = '{column_type}'");
    if let Some(encoding) = encoding {
        let _ = writeln!(out, "encoding = \"{encoding}\"");
    }
    let _ = writeln!(out, "nullable = true\npii = false\ndescription = \"\"");
    if let Some((_, fields)) = members {
        let mut names = Vec::new();
        for member in &fields.columns {
            let member_name = unique_name(&mut names, &member.source);
            emit_new(out, &format!("{table}.fields"), &member_name, member, "member");
        }
    }
}

/// Whether every value was an object (or a list of objects): then the field is a struct (or a
/// list of structs) with the members observed.
fn object_members(observed: &Observed) -> Option<(bool, &Sample)> {
    if observed.objects && !observed.arrays && !observed.scalars {
        return observed.fields.as_deref().filter(|f| !f.columns.is_empty()).map(|f| (false, f));
    }
    if observed.arrays && !observed.objects && !observed.scalars {
        let items = observed.items.as_deref()?;
        if items.objects && !items.arrays && !items.scalars {
            return items.fields.as_deref().filter(|f| !f.columns.is_empty()).map(|f| (true, f));
        }
    }
    None
}

/// A declared column as TOML, with every property it has; `retyped` replaces its type, and the
/// members `observed` shows that it does not declare are added.
fn emit_column(
    out: &mut String,
    column: &Column,
    table: &str,
    retyped: Option<(String, Option<&'static str>)>,
    observed: Option<&Observed>,
    note: &[String],
) {
    out.push('\n');
    for line in note {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "[[{table}]]\nname = {}", quote(&column.name));
    if let Some(source_name) = &column.source_name {
        let _ = writeln!(out, "source_name = {}", quote(source_name));
    }
    let item = match &column.column_type {
        ColumnType::List(item) => Some(item.as_ref()),
        _ => None,
    };
    let (column_type, encoding) = match retyped {
        Some((t, e)) => (t, e.map(str::to_string)),
        None => {
            let encoding = item.map_or(column.encoding, |i| i.encoding);
            (column.column_type.to_string(), encoding_name(encoding).map(str::to_string))
        }
    };
    let _ = writeln!(out, "type = '{column_type}'");
    if let Some(encoding) = encoding {
        let _ = writeln!(out, "encoding = \"{encoding}\"");
    }
    let _ = writeln!(out, "nullable = {}", column.nullable);
    let _ = writeln!(out, "pii = {}", column.pii);
    if column.pii {
        let kind = match column.pii_kind {
            crate::schema::pii::PiiKind::Value => "value",
            crate::schema::pii::PiiKind::Email => "email",
            crate::schema::pii::PiiKind::Phone => "phone",
            crate::schema::pii::PiiKind::Text => "text",
        };
        let _ = writeln!(out, "pii_kind = \"{kind}\"");
    }
    if let Some(action) = column.pii_action {
        let _ = writeln!(out, "pii_action = \"{}\"", action.name());
    }
    if !column.dictionary {
        let _ = writeln!(out, "dictionary = false");
    }
    if column.deprecated {
        let _ = writeln!(out, "deprecated = true");
    }
    if let Some(fill) = column.fill {
        let _ = writeln!(out, "fill = \"{}\"", fill.as_str());
    }
    for (key, value) in [
        ("separator", &column.separator),
        ("interval_end", &column.interval_end),
        ("interval_seconds", &column.interval_seconds),
    ] {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {}", quote(value));
        }
    }
    let _ = writeln!(out, "description = {}", quote(&column.description));
    let members = column.members();
    if members.is_empty() {
        return;
    }
    // The observed members of this struct (or of the list's structs).
    let seen = observed.and_then(object_members).map(|(_, fields)| fields);
    let fields_table = format!("{table}.fields");
    for member in members {
        let observed_member = seen.and_then(|f| f.find(&member.name));
        emit_column(out, member, &fields_table, None, observed_member, &[]);
    }
    if let Some(seen) = seen {
        let mut names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        for observed in &seen.columns {
            if members.iter().any(|m| m.name == observed.source) {
                continue;
            }
            let name = unique_name(&mut names, &observed.source);
            let note =
                format!("new member: in {} of {} sampled values; describe it", observed.values, seen.rows);
            emit_new(out, &fields_table, &name, observed, &note);
        }
    }
}

fn encoding_name(encoding: Encoding) -> Option<&'static str> {
    match encoding {
        Encoding::Plain => None,
        Encoding::EpochMs => Some("epoch_ms"),
        Encoding::JsonText => Some("json_text"),
        Encoding::DurationHms => Some("duration_hms"),
        Encoding::LocalTime => Some("local_time"),
        Encoding::LocalTimeOfDay => Some("local_time_of_day"),
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}
