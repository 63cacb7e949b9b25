//! The data dictionary (`cxlake schema docs`): every dataset with its description, kind, key and
//! file, each column with its type, nullability, PII flag and description (members of nested
//! columns as `column.member`), and the load columns every table ends with — as Markdown for
//! people or JSON for catalogs and scripts. Built from the declarations alone.

use serde_json::{json, Value};

use super::load::load_columns;
use super::{Column, DatasetSchema, SchemaRegistry};

/// One documented column: its path (`ratings.rating_score` for a member), type, nullability,
/// PII flag and description.
struct Entry {
    name: String,
    column_type: String,
    nullable: bool,
    pii: bool,
    description: String,
}

fn entries(prefix: &str, column: &Column, out: &mut Vec<Entry>) {
    let name = if prefix.is_empty() { column.name.clone() } else { format!("{prefix}.{}", column.name) };
    out.push(Entry {
        name: name.clone(),
        column_type: column.column_type.to_string(),
        nullable: column.nullable,
        pii: column.pii,
        description: column.description.clone(),
    });
    for member in column.members() {
        entries(&name, member, out);
    }
}

fn columns(schema: &DatasetSchema) -> Vec<Entry> {
    let mut out = Vec::new();
    for column in schema.columns.iter().chain(&load_columns()) {
        entries("", column, &mut out);
    }
    out
}

fn selected<'a>(
    registry: &'a SchemaRegistry,
    source: Option<&'a str>,
) -> impl Iterator<Item = &'a DatasetSchema> {
    registry.iter().map(|s| s.as_ref()).filter(move |s| source.is_none_or(|wanted| s.source == wanted))
}

/// A Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The dictionary as Markdown: a section per dataset, a table of its columns.
pub fn markdown(registry: &SchemaRegistry, source: Option<&str>) -> String {
    let mut out = String::from(
        "# Data dictionary\n\nEvery table cxlake writes: its declared columns, then the load columns every row \
         has. History tables are `<source>/<dataset>/` (partitioned by `date`), current tables \
         `<source>_current/<dataset>/` (entities only, with `date` as a column).\n",
    );
    for schema in selected(registry, source) {
        out.push_str(&format!(
            "\n## {}\n\n{}\n\n- kind: {}\n- key: {}\n- file: `{}`\n\n| column | type | nullable | PII | description |\n|---|---|---|---|---|\n",
            schema.qualified_name(),
            schema.description,
            schema.kind.as_str(),
            schema.key_display(),
            schema.file,
        ));
        for entry in columns(schema) {
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} | {} |\n",
                entry.name,
                cell(&entry.column_type),
                if entry.nullable { "yes" } else { "no" },
                if entry.pii { "yes" } else { "" },
                cell(&entry.description)
            ));
        }
    }
    out
}

/// The dictionary as JSON: an array of datasets, each with its columns.
pub fn json(registry: &SchemaRegistry, source: Option<&str>) -> Value {
    Value::Array(
        selected(registry, source)
            .map(|schema| {
                json!({
                    "source": schema.source,
                    "dataset": schema.dataset,
                    "description": schema.description,
                    "kind": schema.kind.as_str(),
                    "key": schema.key,
                    "file": schema.file,
                    "columns": columns(schema).into_iter().map(|entry| json!({
                        "name": entry.name,
                        "type": entry.column_type,
                        "nullable": entry.nullable,
                        "pii": entry.pii,
                        "description": entry.description,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_column_and_the_load_columns_are_documented_once_per_dataset() {
        let registry = SchemaRegistry::embedded().unwrap();
        let docs = json(&registry, None);
        let datasets = docs.as_array().unwrap();
        assert_eq!(datasets.len(), registry.iter().count());
        for (dataset, schema) in datasets.iter().zip(registry.iter()) {
            let names: Vec<&str> =
                dataset["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
            for column in &schema.columns {
                assert_eq!(names.iter().filter(|n| **n == column.name).count(), 1, "{}", column.name);
            }
            assert_eq!(&names[names.len() - 2..], ["_cxlake_loaded_at", "_cxlake_run_id"]);
        }
        let text = markdown(&registry, Some("dixa"));
        assert_eq!(
            include_str!("../../DATA_DICTIONARY.md"),
            markdown(&registry, None),
            "DATA_DICTIONARY.md is `cxlake schema docs --out DATA_DICTIONARY.md`: regenerate it"
        );
        assert!(text.contains("## dixa.conversation") && !text.contains("## saltedcx."), "{text}");
        assert!(text.contains("| `ratings.rating_score` |"), "nested members by path");
    }
}
