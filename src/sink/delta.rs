//! `--format delta`: each dataset is a Delta Lake table at `<dest>/<source>/<dataset>/`,
//! partitioned by `date`, and each window is one Delta commit per dataset that removes every file
//! the date had and adds the new ones — so a reader sees the old window or the new one, never a
//! mix, and older versions stay readable (time travel) until `cxlake vacuum`.
//!
//! Data files are written and staged exactly as for plain Parquet, then renamed into the table
//! under names unique to the run (`date=D/part-NNNNN-<run>.parquet`), so they never overwrite a
//! file an older version references. Only then is the commit attempted. A crash before it
//! leaves unreferenced files, which readers of the table ignore and vacuum deletes.
//!
//! Commits are arbitrated by the log itself: version N+1 is created with a create-only put
//! (`If-None-Match` on S3), so of two writers exactly one wins. The loser reloads the table,
//! recomputes which files the date holds *at the new version*, and tries again — so two writers
//! replacing the same date cannot leave both copies, and writers of different dates never lose
//! each other's windows. Each commit carries a `txn` action keyed by the window; when a commit's
//! outcome was ambiguous (a timeout after the put), the retry finds its own txn and stops.
//!
//! Only the light part of delta-rs is used (no DataFusion): `CreateBuilder`, `CommitBuilder`
//! with explicit Add/Remove actions, and `VacuumBuilder`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, ArrayType, DataType, StructField, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, FilterOp, FilterValue};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use url::Url;

use super::parquet::WrittenFile;
use super::{commit, layout, Destination, OutputFormat, SinkError};
use crate::schema::{Column, ColumnType, DatasetSchema};

/// The partition column every table has; its values are the windows' dates.
pub const PARTITION_COLUMN: &str = "date";

/// Commit attempts before a window gives up under contention (each reloads the table).
const MAX_COMMIT_ATTEMPTS: u32 = 25;

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("Delta table {table}: {source}")]
    Table { table: String, source: Box<DeltaTableError> },
    #[error("Delta table {table} cannot take files of {schema}: {difference}. A table evolves by adding nullable columns only; rewrite it with the table's declaration (the window records name it; `cxlake drift` shows it) or land the changed declaration in a new --dest")]
    SchemaMismatch { table: String, schema: String, difference: String },
    #[error(
        "Delta table {table}: gave up after {attempts} commit attempts; other writers kept committing first"
    )]
    Contention { table: String, attempts: u32 },
}

pub(crate) fn table_error(table: &str) -> impl Fn(DeltaTableError) -> SinkError + '_ {
    move |source| SinkError::Delta(DeltaError::Table { table: table.to_string(), source: Box::new(source) })
}

/// Registers the `s3://` scheme with delta-rs (once per process).
fn register_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| deltalake::aws::register_handlers(None));
}

/// One Delta table of the lake: a dataset's history (partitioned by `date`) or its current
/// table (one row per primary key, `date` an ordinary column saying which window it came from).
#[derive(Debug, Clone, Copy)]
pub struct TableSpec<'a> {
    pub source: &'a str,
    pub schema: &'a DatasetSchema,
    pub partitioned: bool,
}

impl<'a> TableSpec<'a> {
    pub fn history(source: &'a str, schema: &'a DatasetSchema) -> TableSpec<'a> {
        TableSpec { source, schema, partitioned: true }
    }

    pub fn current(source: &'a str, schema: &'a DatasetSchema) -> TableSpec<'a> {
        TableSpec { source, schema, partitioned: false }
    }

    /// The table's directory relative to the lake root.
    pub fn relative(&self) -> String {
        if self.partitioned {
            layout::dataset_dir(self.source, &self.schema.dataset)
        } else {
            layout::current_dir(self.source, &self.schema.dataset)
        }
    }
}

/// The URL delta-rs opens for a table directory: `file:///…/saltedcx/turn` or `s3://bucket/prefix/saltedcx/turn`.
pub fn table_url(dest: &Destination, relative: &str) -> Result<Url, SinkError> {
    let invalid = |message: String| SinkError::InvalidDestination { dest: dest.display.clone(), message };
    match (&dest.local_dir, &dest.s3) {
        (Some(dir), _) => Url::from_directory_path(dir.join(relative))
            .map_err(|()| invalid("the lake directory is not an absolute path".into())),
        (None, Some(s3)) => {
            let path = dest.path(relative);
            Url::parse(&format!("s3://{}/{path}", s3.bucket)).map_err(|e| invalid(e.to_string()))
        }
        (None, None) => Err(invalid("Delta tables need a local directory or an s3:// destination".into())),
    }
}

/// The store delta-rs gets, rooted where the table URL's path starts: the bucket on S3 (our
/// store, configured from the AWS_* variables like everything else), `/` on local disk.
fn root_store(dest: &Destination) -> Arc<dyn ObjectStore> {
    match &dest.s3 {
        Some(_) => dest.store.clone(),
        None => Arc::new(LocalFileSystem::new()),
    }
}

/// Opens the table in `relative` (e.g. `saltedcx/turn`); `None` when it does not exist yet.
pub async fn open_table(dest: &Destination, relative: &str) -> Result<Option<DeltaTable>, SinkError> {
    register_handlers();
    let url = table_url(dest, relative)?;
    let name = url.to_string();
    let builder = DeltaTableBuilder::from_url(url.clone())
        .map_err(table_error(&name))?
        .with_storage_backend(root_store(dest), url);
    let mut table = builder.build().map_err(table_error(&name))?;
    // Whether the table exists is our object store's answer (is there a first log entry?):
    // delta-rs reports a missing table in several ways, some only while a directory is being
    // created by a concurrent writer.
    if !commit::has_objects(dest, &format!("{relative}/_delta_log")).await? {
        return Ok(None);
    }
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(table_error(&name)(e)),
    }
}

/// The table's columns: the dataset's columns, the load columns, then the `date` partition
/// column. Each carries its description as `comment` (what Spark's `DESCRIBE` and Unity Catalog
/// show) and its PII flag.
pub fn table_columns(schema: &DatasetSchema) -> Vec<StructField> {
    let load = crate::schema::load::load_columns();
    let mut columns: Vec<StructField> = schema.columns.iter().chain(&load).map(described_field).collect();
    columns.push(StructField::new(PARTITION_COLUMN, DataType::DATE, false));
    columns
}

/// A top-level column as a Delta field with its description as `comment` and its PII flag.
fn described_field(column: &Column) -> StructField {
    use deltalake::kernel::MetadataValue;
    let mut entries: Vec<(&str, MetadataValue)> = vec![("pii", MetadataValue::Boolean(column.pii))];
    if !column.description.is_empty() {
        entries.push(("comment", column.description.clone().into()));
    }
    delta_field(column).add_metadata(entries)
}

fn delta_type(column_type: &ColumnType) -> DataType {
    match column_type {
        ColumnType::Utf8 => DataType::STRING,
        ColumnType::Int64 => DataType::LONG,
        ColumnType::Float64 => DataType::DOUBLE,
        ColumnType::Boolean => DataType::BOOLEAN,
        ColumnType::Date32 => DataType::DATE,
        ColumnType::TimestampUtc => DataType::TIMESTAMP,
        ColumnType::List(item) => ArrayType::new(delta_type(&item.column_type), item.nullable).into(),
        ColumnType::Struct(members) => StructType::try_new(members.iter().map(delta_field))
            .expect("member names are unique (checked when the schema loads)")
            .into(),
    }
}

/// A declared column (or struct member) as a Delta field.
fn delta_field(column: &Column) -> StructField {
    StructField::new(column.name.clone(), delta_type(&column.column_type), column.nullable)
}

/// Opens the table, creating it (empty, partitioned by date) if it does not exist. Two writers
/// creating it at once race on version 0; the loser opens the winner's table.
async fn open_or_create(dest: &Destination, spec: TableSpec<'_>) -> Result<DeltaTable, SinkError> {
    let relative = spec.relative();
    if let Some(table) = open_table(dest, &relative).await? {
        return Ok(table);
    }
    // Windows of one run (--parallel-windows) create tables one at a time; other processes
    // race on the create-only put of version 0 below.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _creating = CREATING.lock().await;
    if let Some(table) = open_table(dest, &relative).await? {
        return Ok(table);
    }
    let url = table_url(dest, &relative)?;
    let name = url.to_string();
    let (source, dataset) = (spec.source, &spec.schema.dataset);
    let (table_name, comment, partitions) = if spec.partitioned {
        (
            format!("{source}_{dataset}"),
            format!(
                "{source}.{dataset}: {} Landed by cxlake; one partition per window (UTC day).",
                spec.schema.description
            ),
            vec![PARTITION_COLUMN],
        )
    } else {
        (
            format!("{source}_{dataset}_current"),
            format!(
                "{source}.{dataset}: {} The latest row per {} (cxlake current table).",
                spec.schema.description,
                spec.schema.key_display()
            ),
            vec![],
        )
    };
    let table = DeltaTableBuilder::from_url(url.clone())
        .map_err(table_error(&name))?
        .with_storage_backend(root_store(dest), url)
        .build()
        .map_err(table_error(&name))?;
    let created = CreateBuilder::new()
        .with_log_store(table.log_store())
        .with_table_name(table_name)
        .with_comment(comment)
        .with_columns(table_columns(spec.schema))
        .with_partition_columns(partitions)
        .with_save_mode(SaveMode::Ignore)
        // Losing the race for version 0 must not turn into a second "create" commit on top of
        // the winner's: fail instead, and open the winner's table below.
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await;
    match created {
        Ok(table) => Ok(table),
        Err(e) => match open_table(dest, &relative).await? {
            Some(table) => Ok(table),
            None => Err(table_error(&name)(e)),
        },
    }
}

/// The table schema a commit of files with `columns` needs: `None` when the table's schema holds
/// them already, else the table's columns followed by the new ones (each nullable: the table's
/// other files read them as null) — Delta's additive schema evolution, committed with the files.
/// A column whose type differs from the table's, or a new required column, cannot be added.
fn evolved_schema(
    current: &StructType,
    columns: &[StructField],
    table: &str,
    schema: &str,
) -> Result<Option<StructType>, SinkError> {
    let mismatch = |difference: String| {
        SinkError::Delta(DeltaError::SchemaMismatch {
            table: table.to_string(),
            schema: schema.to_string(),
            difference,
        })
    };
    let mut added = Vec::new();
    for column in columns {
        match current.fields().find(|f| f.name() == column.name()) {
            Some(existing) if existing.data_type() != column.data_type() => {
                return Err(mismatch(format!(
                    "column `{}` is {:?} in the table and {:?} in the declaration",
                    column.name(),
                    existing.data_type(),
                    column.data_type()
                )))
            }
            Some(_) => {}
            None if !column.is_nullable() => {
                return Err(mismatch(format!("column `{}` is new and required", column.name())))
            }
            None => added.push(column.clone()),
        }
    }
    if added.is_empty() {
        return Ok(None);
    }
    let fields: Vec<StructField> = current.fields().cloned().chain(added).collect();
    StructType::try_new(fields).map(Some).map_err(|e| mismatch(e.to_string()))
}

/// The identity of one replacement, carried by the commit as a Delta `txn` action.
#[derive(Debug, Clone)]
pub struct WindowCommit {
    /// What is replaced: `cxlake:date=YYYY-MM-DD` for a window, `cxlake:current` for a current table.
    pub app_id: String,
    pub date: NaiveDate,
    /// Unique per attempt to land the window (when it was prepared, in ms): a retry of the
    /// same attempt finds it in the log; a later rerun is a new replacement.
    pub version: i64,
    pub run_id: String,
}

impl WindowCommit {
    /// A window's replacement in a history table.
    pub fn window(date: NaiveDate, run_id: &str) -> WindowCommit {
        WindowCommit {
            app_id: format!("cxlake:date={date}"),
            date,
            version: Utc::now().timestamp_millis(),
            run_id: run_id.to_string(),
        }
    }
}

/// A dataset's window after its Delta commit.
#[derive(Debug, Clone)]
pub struct Committed {
    pub files: Vec<WrittenFile>,
    /// The table version that holds the window.
    pub table_version: u64,
    /// Commit attempts it took: more than 1 when other writers committed first.
    pub attempts: u32,
}

/// What a commit removes from the table besides adding its files.
#[derive(Debug, Clone, Copy)]
pub enum Replaces<'a> {
    /// Every file of the window's partition (history tables) or of the whole table (current tables).
    Everything,
    /// Exactly these files, paths relative to the lake root (an incremental current-table refresh).
    Files(&'a std::collections::BTreeSet<String>),
}

/// Moves staged files into the table and commits them as the only files of the window's
/// partition (history tables) or of the whole table (current tables).
pub async fn publish(
    dest: &Destination,
    spec: TableSpec<'_>,
    commit: &WindowCommit,
    staged: &[WrittenFile],
) -> Result<Committed, SinkError> {
    publish_replacing(dest, spec, commit, staged, Replaces::Everything).await
}

/// Moves staged files into the table and commits them in place of what `replaces` names.
pub async fn publish_replacing(
    dest: &Destination,
    spec: TableSpec<'_>,
    commit: &WindowCommit,
    staged: &[WrittenFile],
    replaces: Replaces<'_>,
) -> Result<Committed, SinkError> {
    let mut table = open_or_create(dest, spec).await?;
    let table_dir = spec.relative();
    let data_dir =
        if spec.partitioned { format!("{table_dir}/date={}", commit.date) } else { table_dir.clone() };
    let mut files = Vec::with_capacity(staged.len());
    for (index, file) in staged.iter().enumerate() {
        let name = layout::unique_part_file_name(index, &commit.run_id);
        let to_relative = format!("{data_dir}/{name}");
        let (from, to) = (dest.path(&file.path), dest.path(&to_relative));
        // Names are unique to this run, so this never replaces a file a table version references.
        object_store::ObjectStoreExt::rename(&dest.store, &from, &to)
            .await
            .map_err(|e| SinkError::store(&from, e))?;
        files.push(WrittenFile { path: to_relative, ..file.clone() });
    }
    super::crash_if_asked("before-delta-commit");
    let partitions = [(commit.date, files)];
    let columns = Columns { fields: table_columns(spec.schema), schema: spec.schema.qualified_name() };
    let (table_version, attempts) =
        commit_replacement(&mut table, spec.partitioned, commit, &partitions, &table_dir, replaces, &columns)
            .await?;
    let [(_, files)] = partitions;
    Ok(Committed { files, table_version, attempts })
}

/// Moves the staged files of several windows of a history table into it and commits them, in
/// one commit, as the only files of their partitions (an erasure rewriting many windows);
/// returns each window's files at their final paths.
pub async fn publish_partitions(
    dest: &Destination,
    spec: TableSpec<'_>,
    run_id: &str,
    staged: &BTreeMap<NaiveDate, Vec<WrittenFile>>,
) -> Result<BTreeMap<NaiveDate, Vec<WrittenFile>>, SinkError> {
    let mut table = open_or_create(dest, spec).await?;
    let table_dir = spec.relative();
    let mut partitions = Vec::with_capacity(staged.len());
    for (date, files) in staged {
        let mut moved = Vec::with_capacity(files.len());
        for (index, file) in files.iter().enumerate() {
            let to_relative =
                format!("{table_dir}/date={date}/{}", layout::unique_part_file_name(index, run_id));
            let (from, to) = (dest.path(&file.path), dest.path(&to_relative));
            object_store::ObjectStoreExt::rename(&dest.store, &from, &to)
                .await
                .map_err(|e| SinkError::store(&from, e))?;
            moved.push(WrittenFile { path: to_relative, ..file.clone() });
        }
        partitions.push((*date, moved));
    }
    let Some(first) = staged.keys().next() else { return Ok(BTreeMap::new()) };
    let commit = WindowCommit {
        app_id: format!("cxlake:rewrite={run_id}"),
        date: *first,
        version: Utc::now().timestamp_millis(),
        run_id: run_id.to_string(),
    };
    let columns = Columns { fields: table_columns(spec.schema), schema: spec.schema.qualified_name() };
    commit_replacement(&mut table, true, &commit, &partitions, &table_dir, Replaces::Everything, &columns)
        .await?;
    Ok(partitions.into_iter().collect())
}

/// The columns of the files a commit adds, and the declaration they come from (for messages).
struct Columns {
    fields: Vec<StructField>,
    schema: String,
}

/// Commits `partitions`' files in place of what `replaces` names in each of those partitions
/// (the whole table when it is not partitioned), adding to the table's schema the columns the
/// files have and it lacks.
async fn commit_replacement(
    table: &mut DeltaTable,
    partitioned: bool,
    commit: &WindowCommit,
    partitions: &[(NaiveDate, Vec<WrittenFile>)],
    table_dir: &str,
    replaces: Replaces<'_>,
    columns: &Columns,
) -> Result<(u64, u32), SinkError> {
    let name = table.table_url().to_string();
    let dates: Vec<String> = partitions.iter().map(|(date, _)| date.to_string()).collect();
    let table_prefix = format!("{table_dir}/");
    let prefix = table_prefix.as_str();
    let now = Utc::now().timestamp_millis();
    let adds: Vec<Action> = partitions
        .iter()
        .flat_map(|(date, files)| {
            let partition_values = if partitioned {
                HashMap::from([(PARTITION_COLUMN.to_string(), Some(date.to_string()))])
            } else {
                HashMap::new()
            };
            files.iter().map(move |f| {
                Action::Add(Add {
                    path: f.path.strip_prefix(prefix).unwrap_or(&f.path).to_string(),
                    partition_values: partition_values.clone(),
                    size: f.bytes as i64,
                    modification_time: now,
                    data_change: true,
                    stats: Some(serde_json::json!({ "numRecords": f.rows }).to_string()),
                    ..Default::default()
                })
            })
        })
        .collect();
    let mut backoff = Duration::from_millis(50);
    for attempt in 1..=MAX_COMMIT_ATTEMPTS {
        if attempt > 1 {
            table.update_state().await.map_err(table_error(&name))?;
        }
        let snapshot = table.snapshot().map_err(table_error(&name))?;
        // An earlier attempt whose outcome we did not hear may have landed.
        if snapshot
            .transaction_version(table.log_store().as_ref(), &commit.app_id)
            .await
            .map_err(table_error(&name))?
            == Some(commit.version)
        {
            return Ok((snapshot.version(), attempt));
        }
        let mut replaced: Vec<Action> = Vec::new();
        for date in &dates {
            let by_date = [(PARTITION_COLUMN, FilterOp::Eq, FilterValue::Scalar(date.as_str()))];
            let filter: &[_] = if partitioned { &by_date } else { &[] };
            let removes: Vec<Action> = table
                .get_active_add_actions_by_partitions(filter)
                .try_filter(|file| {
                    let keep = match replaces {
                        Replaces::Everything => true,
                        Replaces::Files(paths) => paths.contains(&format!("{table_prefix}{}", file.path())),
                    };
                    std::future::ready(keep)
                })
                .map_ok(|file| Action::Remove(file.remove_action(true)))
                .try_collect()
                .await
                .map_err(table_error(&name))?;
            replaced.extend(removes);
            if !partitioned {
                break;
            }
        }
        if let Replaces::Files(paths) = replaces {
            if replaced.len() != paths.len() {
                return Err(SinkError::CorruptState {
                    path: name.clone(),
                    message: format!(
                        "{} of the {} files to replace are not in the table's latest version",
                        paths.len() - replaced.len(),
                        paths.len()
                    ),
                });
            }
        }
        let mut actions = replaced;
        // Evolution is decided against this attempt's version: another writer may have added
        // the same columns meanwhile.
        if let Some(evolved) = evolved_schema(&snapshot.schema(), &columns.fields, &name, &columns.schema)? {
            use deltalake::kernel::MetadataExt;
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&evolved)
                .map_err(|e| table_error(&name)(DeltaTableError::from(e)))?;
            tracing::info!(table = %name, "Adding the declaration's new columns to the Delta table's schema");
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(adds.iter().cloned());
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new_with_last_update(
                commit.app_id.clone(),
                commit.version,
                Some(now),
            ))
            .with_metadata([("cxlakeRunId".to_string(), serde_json::Value::from(commit.run_id.clone()))]);
        let operation = match replaces {
            Replaces::Everything => DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by: partitioned.then(|| vec![PARTITION_COLUMN.to_string()]),
                predicate: partitioned.then(|| match &dates[..] {
                    [date] => format!("{PARTITION_COLUMN} = '{date}'"),
                    dates => format!("{PARTITION_COLUMN} IN ('{}')", dates.join("', '")),
                }),
            },
            // Some files rewritten with some of their rows changed: what an UPDATE commits.
            Replaces::Files(_) => DeltaOperation::Update { predicate: None },
        };
        // No retries inside delta-rs: a retry must recompute the removes against the new version.
        let result = CommitBuilder::from(properties)
            .with_actions(actions)
            .with_max_retries(0)
            .build(Some(snapshot), table.log_store(), operation)
            .await;
        match result {
            Ok(done) => return Ok((done.version(), attempt)),
            Err(DeltaTableError::Transaction {
                source:
                    TransactionError::VersionAlreadyExists(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::CommitConflict(_),
            }) => {
                tracing::debug!(table = %name, attempt, "Another writer committed first; retrying against the new version");
            }
            Err(e) => {
                tracing::warn!(table = %name, attempt, error = %e, "Delta commit failed; retrying");
                if attempt >= 3 {
                    return Err(table_error(&name)(e));
                }
            }
        }
        let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    Err(SinkError::Delta(DeltaError::Contention { table: name, attempts: MAX_COMMIT_ATTEMPTS }))
}

/// What a dataset directory holds: a Delta table (it has a `_delta_log`), plain Parquet
/// partitions, or nothing yet.
pub async fn existing_format(dest: &Destination, relative: &str) -> Result<Option<OutputFormat>, SinkError> {
    let names = commit::child_dirs(dest, relative).await?;
    Ok(if names.iter().any(|n| n == "_delta_log") {
        Some(OutputFormat::Delta)
    } else if names.iter().any(|n| n.starts_with("date=")) {
        Some(OutputFormat::Parquet)
    } else {
        None
    })
}

/// Files a vacuum deleted (or would delete, in a dry run), relative to the table.
#[derive(Debug)]
pub struct Vacuumed {
    pub files: Vec<String>,
}

/// Deletes the table's data files that no version newer than `retention` ago references, and
/// files never committed (a crash between writing and committing) once they are that old.
/// `None` when `relative` is not a Delta table.
pub async fn vacuum(
    dest: &Destination,
    relative: &str,
    retention: Duration,
    dry_run: bool,
) -> Result<Option<Vacuumed>, SinkError> {
    let Some(table) = open_table(dest, relative).await? else {
        return Ok(None);
    };
    let name = table.table_url().to_string();
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(retention)
        // The table's own minimum (7 days by default) is the safe default, but the user chose.
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_dry_run(dry_run)
        .await
        .map_err(table_error(&name))?;
    Ok(Some(Vacuumed { files: metrics.files_deleted }))
}
