//! The schema of the files cxlake writes: the declared columns, each carrying its description and
//! PII flag as Arrow field metadata (Parquet keeps it in the file's Arrow schema, so pyarrow,
//! Polars and Spark show it), then the two load columns on every row of every table — when the
//! window was loaded and by which run — that downstream incremental models filter on, as they
//! do on Airbyte's `_airbyte_extracted_at`, Fivetran's `_fivetran_synced` or dlt's
//! `_dlt_load_id`. The load columns are not declared: every table has them, and files written
//! before they existed read them as null.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::{Column, ColumnType, DatasetSchema};

/// When the window's rows were loaded (the instant its conversion began; its window record
/// says the same).
pub const LOADED_AT: &str = "_cxlake_loaded_at";
/// The run that loaded them (`cxlake status` and the run reports name it).
pub const RUN_ID: &str = "_cxlake_run_id";

/// The metadata key of a column's description (and of a dataset's, on the schema).
pub const DESCRIPTION_KEY: &str = "description";
/// The metadata key of a column's PII flag: `true` or `false`.
pub const PII_KEY: &str = "pii";

const LOADED_AT_DESCRIPTION: &str =
    "When cxlake loaded the window this row came from (UTC); moves only when the window's data changed.";
const RUN_ID_DESCRIPTION: &str = "The cxlake run that loaded the window this row came from.";

fn described(field: Field, description: &str, pii: bool) -> Field {
    field.with_metadata(HashMap::from([
        (DESCRIPTION_KEY.to_string(), description.to_string()),
        (PII_KEY.to_string(), pii.to_string()),
    ]))
}

/// A declared column as the files' field: its type, its description and PII flag.
pub fn column_field(column: &Column) -> Field {
    described(column.arrow_field(), &column.description, column.pii)
}

/// The two load columns as columns (every writer of a table's schema — Parquet, Delta, the
/// data dictionary, dbt — describes them as it describes declared ones), nullable because older
/// files lack them, in this order.
pub fn load_columns() -> [Column; 2] {
    let column = |name: &str, column_type: ColumnType, description: &str| Column {
        description: description.to_string(),
        ..Column::member(name, column_type, true)
    };
    [
        column(LOADED_AT, ColumnType::TimestampUtc, LOADED_AT_DESCRIPTION),
        column(RUN_ID, ColumnType::Utf8, RUN_ID_DESCRIPTION),
    ]
}

/// The load columns as the files' fields.
pub fn load_fields() -> [Field; 2] {
    load_columns().map(|c| column_field(&c))
}

/// Whether `name` is one of the load columns.
pub fn is_load_column(name: &str) -> bool {
    name == LOADED_AT || name == RUN_ID
}

/// The schema of a dataset's files: its declared columns, described, then the load columns;
/// the dataset's description on the schema.
pub fn stored_schema(dataset: &DatasetSchema) -> SchemaRef {
    let fields: Vec<Field> = dataset.columns.iter().map(column_field).chain(load_fields()).collect();
    let metadata = HashMap::from([(DESCRIPTION_KEY.to_string(), dataset.description.clone())]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// What the load columns of one window's rows say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStamp {
    pub loaded_at: DateTime<Utc>,
    pub run_id: String,
}

impl LoadStamp {
    /// `batch` (a dataset's declared columns) with the load columns added, as `schema` (the
    /// dataset's [`stored_schema`]) says.
    pub fn stamp(&self, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
        let rows = batch.num_rows();
        let loaded_at: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![self.loaded_at.timestamp_micros(); rows])
                .with_timezone("UTC"),
        );
        let run_id: ArrayRef =
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(&self.run_id, rows)));
        let columns: Vec<ArrayRef> = batch.columns().iter().cloned().chain([loaded_at, run_id]).collect();
        RecordBatch::try_new(schema.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_batch_has_the_declared_columns_described_then_the_load_columns() {
        let registry = crate::schema::SchemaRegistry::embedded().unwrap();
        let dataset = registry.iter().find(|d| d.columns.iter().any(|c| c.pii)).unwrap();
        let schema = stored_schema(dataset);
        assert_eq!(schema.fields().len(), dataset.columns.len() + 2);
        assert_eq!(schema.metadata()[DESCRIPTION_KEY], dataset.description);
        let pii = dataset.columns.iter().find(|c| c.pii).unwrap();
        let field = schema.field_with_name(&pii.name).unwrap();
        assert_eq!(field.metadata()[PII_KEY], "true");
        assert_eq!(field.metadata()[DESCRIPTION_KEY], pii.description);

        let declared = RecordBatch::new_empty(dataset.arrow_schema());
        let stamp = LoadStamp { loaded_at: Utc::now(), run_id: "r1".into() };
        let stamped = stamp.stamp(&declared, &schema).unwrap();
        assert_eq!(stamped.schema(), schema);
        assert!(is_load_column(stamped.schema().field(dataset.columns.len()).name()));
    }
}
