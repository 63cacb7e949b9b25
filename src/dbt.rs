//! `cxlake dbt sources`: the lake as a dbt sources file for dbt-duckdb, so a dbt project selects
//! from `{{ source('saltedcx', 'engagement') }}` instead of a hand-written list of 38 tables. One
//! source per platform in the lake, one table per dataset (its history) and per current table
//! (entities: the materialised table; events: the history deduplicated at query time, as the
//! views do), each read from its `meta.external_location` — a Parquet glob with Hive
//! partitioning, or `delta_scan` — on local disk or S3, with no braces (dbt-duckdb fills
//! `{name}` placeholders and dbt renders `{{ }}`); descriptions and `meta: {pii: true}` from
//! the declarations; `loaded_at_field: _cxlake_loaded_at` with freshness thresholds; `unique` and
//! `not_null` tests on each current table's key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::current::{dedup_select, lake_tables, CurrentView};
use crate::schema::load::load_columns;
use crate::schema::{DatasetSchema, SchemaRegistry};
use crate::sink::{layout, Destination, SinkError};

/// A YAML scalar: JSON's double-quoted string is YAML's too.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// A freshness threshold in dbt's words: whole hours, or minutes under an hour.
fn threshold(age: Duration) -> String {
    let minutes = age.as_secs().div_ceil(60).max(1);
    if minutes.is_multiple_of(60) || minutes >= 600 {
        format!("{{count: {}, period: hour}}", minutes.div_ceil(60))
    } else {
        format!("{{count: {minutes}, period: minute}}")
    }
}

fn columns(out: &mut String, schema: &DatasetSchema, current: bool) {
    out.push_str("        columns:\n");
    let single_key = (schema.key.len() == 1).then(|| schema.key[0].as_str());
    for column in &schema.columns {
        // Quoted: a column may be named by an SQL keyword (Sparkcentral's `from`).
        let _ = writeln!(out, "          - name: {}\n            quote: true", quoted(&column.name));
        if !column.description.is_empty() {
            let _ = writeln!(out, "            description: {}", quoted(&column.description));
        }
        if column.pii {
            out.push_str("            meta: {pii: true}\n");
        }
        if current && schema.key.contains(&column.name) {
            let tests =
                if single_key == Some(column.name.as_str()) { "[unique, not_null]" } else { "[not_null]" };
            let _ = writeln!(out, "            data_tests: {tests}");
        }
    }
    for column in load_columns() {
        let _ = writeln!(out, "          - name: {}", quoted(&column.name));
        let _ = writeln!(out, "            description: {}", quoted(&column.description));
    }
    let date = if current {
        "The day of the window the row was taken from."
    } else {
        "The window's day: the partition the row is in."
    };
    let _ = writeln!(out, "          - name: \"date\"\n            description: {}", quoted(date));
}

/// The sources file for the lake at `dest`: every platform with tables in it, described by
/// `registry`; `titles` names platforms as people write them; a dataset's data older than
/// `max_age` warns, older than twice that is an error.
pub async fn sources_yml(
    dest: &Destination,
    registry: &SchemaRegistry,
    titles: &BTreeMap<String, String>,
    max_age: Duration,
) -> Result<String, SinkError> {
    let tables = lake_tables(dest, registry).await?;
    let mut out = format!(
        "# dbt sources for the cxlake lake at {}, written by cxlake {} (`cxlake dbt sources`).\n\
         # dbt-duckdb reads each table from its meta.external_location; source('<platform>', '<table>')\n\
         # selects from it. Regenerate after a new source or dataset lands.\n\
         version: 2\n\nsources:\n",
        dest.display,
        env!("CARGO_PKG_VERSION")
    );
    let mut sources: Vec<&str> = tables.iter().map(|t| t.source.as_str()).collect();
    sources.dedup();
    for source in sources {
        let title = titles.get(source).map_or(source, String::as_str);
        let _ = write!(
            out,
            "  - name: {}\n    description: {}\n    loaded_at_field: _cxlake_loaded_at\n    freshness:\n      warn_after: {}\n      error_after: {}\n    tables:\n",
            quoted(source),
            quoted(&format!("{title}, landed by cxlake into {}", dest.display)),
            threshold(max_age),
            threshold(max_age * 2),
        );
        for table in tables.iter().filter(|t| t.source == source) {
            let Ok(schema) = registry.dataset(source, &table.dataset) else { continue };
            let history = table.format.duckdb_scan_without_braces(
                &dest.location(&layout::dataset_dir(source, &table.dataset)),
                true,
            );
            let _ = write!(
                out,
                "      - name: {}\n        description: {}\n        meta:\n          external_location: {}\n          cxlake_kind: {}\n",
                quoted(&table.dataset),
                quoted(&schema.description),
                quoted(&history),
                schema.kind.as_str(),
            );
            columns(&mut out, &schema, false);
            let current = match &table.current {
                CurrentView::None => continue,
                CurrentView::Table => table
                    .format
                    .duckdb_scan(&dest.location(&layout::current_dir(source, &table.dataset)), false),
                CurrentView::Dedup { key, version } => {
                    format!("({})", dedup_select(&history, key, version.as_deref()))
                }
            };
            let _ = write!(
                out,
                "      - name: {}\n        description: {}\n        meta:\n          external_location: {}\n",
                quoted(&format!("{}_current", table.dataset)),
                quoted(&format!("{} The latest row per {}.", schema.description, schema.key_display())),
                quoted(&current),
            );
            if schema.key.len() > 1 {
                let combined: Vec<String> = schema
                    .key
                    .iter()
                    .map(|k| format!("coalesce(cast({} AS VARCHAR), '')", quoted(k)))
                    .collect();
                let _ = writeln!(
                    out,
                    "        data_tests:\n          - unique:\n              column_name: {}",
                    quoted(&format!("({})", combined.join(" || '|' || ")))
                );
            }
            columns(&mut out, &schema, true);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_in_dbt_units_and_strings_are_quoted() {
        assert_eq!(threshold(Duration::from_secs(36 * 3600)), "{count: 36, period: hour}");
        assert_eq!(threshold(Duration::from_secs(90 * 60)), "{count: 90, period: minute}");
        assert_eq!(quoted("a \"b\"\n"), r#""a \"b\"\n""#);
    }
}
