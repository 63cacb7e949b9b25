//! Declared dataset schemas: the single source of truth for what a column is called, which Arrow
//! type it lands as, whether it may be null, what it means, and whether it holds personal data.
//!
//! Schemas live as TOML files in `schemas/<source>/<dataset>.toml`. They are embedded into the
//! binary at build time so a deployed `cxlake` is self-contained; `--schemas DIR` loads the same
//! files from disk instead, so a tenant with custom columns can extend them without a rebuild.
//! Type names follow Arrow's own spelling (`Int64`, `Timestamp(Microsecond, "UTC")`); only the
//! types the decoder can produce are accepted, so a typo fails at load time, not mid-sync.

pub mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

/// Schema files compiled into the binary: `(source, dataset, toml text)`.
const EMBEDDED: &[(&str, &str, &str)] = &[
    ("saltedcx", "engagement", include_str!("../../schemas/saltedcx/engagement.toml")),
    ("saltedcx", "customer", include_str!("../../schemas/saltedcx/customer.toml")),
    ("saltedcx", "turn", include_str!("../../schemas/saltedcx/turn.toml")),
    ("saltedcx", "review", include_str!("../../schemas/saltedcx/review.toml")),
    ("saltedcx", "agent", include_str!("../../schemas/saltedcx/agent.toml")),
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("cannot read schema file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid schema file {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("unknown dataset `{name}`; known datasets: {known}. Run `cxlake schema list`")]
    UnknownDataset { name: String, known: String },
}

/// The column types the decoder knows how to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Utf8,
    Int64,
    Float64,
    Boolean,
    Date32,
    /// `Timestamp(Microsecond, "UTC")`: every timestamp is normalised to UTC.
    TimestampUtc,
}

impl ColumnType {
    pub fn parse(text: &str) -> Option<ColumnType> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        Some(match compact.as_str() {
            "Utf8" => ColumnType::Utf8,
            "Int64" => ColumnType::Int64,
            "Float64" => ColumnType::Float64,
            "Boolean" => ColumnType::Boolean,
            "Date32" => ColumnType::Date32,
            "Timestamp(Microsecond,\"UTC\")" | "Timestamp(Microsecond,Some(\"UTC\"))" => {
                ColumnType::TimestampUtc
            }
            _ => return None,
        })
    }

    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date32 => DataType::Date32,
            ColumnType::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Utf8 => "Utf8",
            ColumnType::Int64 => "Int64",
            ColumnType::Float64 => "Float64",
            ColumnType::Boolean => "Boolean",
            ColumnType::Date32 => "Date32",
            ColumnType::TimestampUtc => "Timestamp(Microsecond, \"UTC\")",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
    pub pii: bool,
    /// Whether Parquet should try dictionary encoding (off for values unique per row: ids, links).
    pub dictionary: bool,
    pub description: String,
}

/// One dataset of one source, e.g. `saltedcx.turn`.
#[derive(Debug, Clone)]
pub struct DatasetSchema {
    pub source: String,
    pub dataset: String,
    /// File name the platform gives the export, e.g. `turns.csv`.
    pub file: String,
    pub primary_key: String,
    pub description: String,
    pub columns: Vec<Column>,
    arrow: SchemaRef,
}

impl DatasetSchema {
    /// `source.dataset`, the name users type.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.source, self.dataset)
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        self.arrow.clone()
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    source: String,
    dataset: String,
    file: String,
    primary_key: String,
    description: String,
    columns: Vec<ColumnFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    column_type: String,
    nullable: bool,
    #[serde(default)]
    pii: bool,
    #[serde(default = "default_dictionary")]
    dictionary: bool,
    description: String,
}

fn default_dictionary() -> bool {
    true
}

fn parse_schema(origin: &str, text: &str) -> Result<DatasetSchema, SchemaError> {
    let invalid = |message: String| SchemaError::Invalid { origin: origin.to_string(), message };
    let file: SchemaFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    // Source and dataset become path components of the lake: keep them plain identifiers.
    for (what, name) in [("source", &file.source), ("dataset", &file.dataset)] {
        if !crate::sink::layout::is_identifier(name) {
            return Err(invalid(format!("{what} `{name}` must be lowercase letters, digits and `_`")));
        }
    }
    if file.columns.is_empty() {
        return Err(invalid("no [[columns]] declared".into()));
    }
    let mut columns = Vec::with_capacity(file.columns.len());
    for c in file.columns {
        let column_type = ColumnType::parse(&c.column_type).ok_or_else(|| {
            invalid(format!(
                "column `{}` has unsupported type `{}`; use one of Utf8, Int64, Float64, Boolean, Date32, Timestamp(Microsecond, \"UTC\")",
                c.name, c.column_type
            ))
        })?;
        if columns.iter().any(|seen: &Column| seen.name == c.name) {
            return Err(invalid(format!("column `{}` is declared twice", c.name)));
        }
        columns.push(Column {
            name: c.name,
            column_type,
            nullable: c.nullable,
            pii: c.pii,
            dictionary: c.dictionary,
            description: c.description,
        });
    }
    if !columns.iter().any(|c| c.name == file.primary_key) {
        return Err(invalid(format!("primary_key `{}` is not a declared column", file.primary_key)));
    }
    let fields: Vec<Field> =
        columns.iter().map(|c| Field::new(&c.name, c.column_type.arrow_type(), c.nullable)).collect();
    Ok(DatasetSchema {
        source: file.source,
        dataset: file.dataset,
        file: file.file,
        primary_key: file.primary_key,
        description: file.description,
        columns,
        arrow: Arc::new(Schema::new(fields)),
    })
}

/// All known dataset schemas, keyed by `source.dataset`.
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    schemas: BTreeMap<String, Arc<DatasetSchema>>,
}

impl SchemaRegistry {
    /// The schemas compiled into this binary.
    pub fn embedded() -> Result<SchemaRegistry, SchemaError> {
        let mut schemas = BTreeMap::new();
        for (source, dataset, text) in EMBEDDED {
            let origin = format!("schemas/{source}/{dataset}.toml (embedded)");
            let schema = parse_schema(&origin, text)?;
            schemas.insert(schema.qualified_name(), Arc::new(schema));
        }
        Ok(SchemaRegistry { schemas })
    }

    /// Embedded schemas, overridden by every `<dir>/<source>/<dataset>.toml` found on disk.
    pub fn with_overrides(dir: &Path) -> Result<SchemaRegistry, SchemaError> {
        let mut registry = SchemaRegistry::embedded()?;
        let read_dir = |p: &Path| {
            std::fs::read_dir(p).map_err(|source| SchemaError::Read { path: p.to_path_buf(), source })
        };
        for source_dir in read_dir(dir)? {
            let source_dir =
                source_dir.map_err(|source| SchemaError::Read { path: dir.to_path_buf(), source })?;
            if !source_dir.path().is_dir() {
                continue;
            }
            for entry in read_dir(&source_dir.path())? {
                let path =
                    entry.map_err(|source| SchemaError::Read { path: source_dir.path(), source })?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| SchemaError::Read { path: path.clone(), source })?;
                let schema = parse_schema(&path.display().to_string(), &text)?;
                registry.schemas.insert(schema.qualified_name(), Arc::new(schema));
            }
        }
        Ok(registry)
    }

    pub fn get(&self, qualified: &str) -> Result<Arc<DatasetSchema>, SchemaError> {
        self.schemas.get(qualified).cloned().ok_or_else(|| SchemaError::UnknownDataset {
            name: qualified.to_string(),
            known: self.schemas.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn dataset(&self, source: &str, dataset: &str) -> Result<Arc<DatasetSchema>, SchemaError> {
        self.get(&format!("{source}.{dataset}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<DatasetSchema>> {
        self.schemas.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_load_with_expanded_numbered_columns() {
        let registry = SchemaRegistry::embedded().unwrap();
        let engagement = registry.get("saltedcx.engagement").unwrap();
        for name in ["attribute_01", "attribute_04", "engagement_fact_01", "engagement_fact_03"] {
            assert!(engagement.column_index(name).is_some(), "{name} missing");
        }
        assert_eq!(engagement.columns.len(), 80);
        assert_eq!(registry.get("saltedcx.turn").unwrap().columns.len(), 21);
        assert_eq!(registry.get("saltedcx.review").unwrap().columns.len(), 34);
        assert_eq!(registry.get("saltedcx.customer").unwrap().columns.len(), 11);
        assert_eq!(registry.get("saltedcx.agent").unwrap().columns.len(), 13);
    }

    #[test]
    fn type_names_round_trip_and_match_arrow() {
        for t in [
            ColumnType::Utf8,
            ColumnType::Int64,
            ColumnType::Float64,
            ColumnType::Boolean,
            ColumnType::Date32,
            ColumnType::TimestampUtc,
        ] {
            assert_eq!(ColumnType::parse(&t.to_string()), Some(t));
        }
        assert_eq!(
            ColumnType::TimestampUtc.arrow_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(ColumnType::parse("Decimal128(10,2)"), None);
    }

    #[test]
    fn invalid_schema_names_the_problem() {
        let text = "source='s'\ndataset='d'\nfile='f.csv'\nprimary_key='id'\ndescription=''\n[[columns]]\nname='id'\ntype='Int32'\nnullable=false\ndescription=''\n";
        let err = parse_schema("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("`id`") && err.contains("Int32"), "{err}");
    }

    #[test]
    fn schema_names_cannot_escape_the_lake() {
        let text = "source='saltedcx'\ndataset='../../etc'\nfile='f.csv'\nprimary_key='id'\ndescription=''\n[[columns]]\nname='id'\ntype='Utf8'\nnullable=false\ndescription=''\n";
        let err = parse_schema("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("dataset `../../etc`"), "{err}");
    }

    #[test]
    fn unknown_dataset_lists_known_ones() {
        let err = SchemaRegistry::embedded().unwrap().get("saltedcx.nope").unwrap_err().to_string();
        assert!(err.contains("saltedcx.turn"), "{err}");
    }
}
