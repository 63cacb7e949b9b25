//! A dataset's table on the lake, whichever format it is written in: plain Hive-partitioned
//! Parquet (the window records list its files; publishing renames them into place) or a Delta
//! table (its log is the truth; publishing is a commit). Everything the rest of cxlake does to a
//! table — replace a window, rewrite several, list a window's files, read its partitions, add
//! a current table's segments, drop what is no longer referenced, scan it from DuckDB — is an
//! operation here, so nothing outside `sink` branches on [`OutputFormat`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use futures::TryStreamExt;

use super::delta::{self, Committed, Replaces, TableSpec, WindowCommit, PARTITION_COLUMN};
use super::parquet::WrittenFile;
use super::{commit, layout, Destination, OutputFormat, SinkError};
use crate::schema::DatasetSchema;
use crate::state::WindowRecord;

/// One table: a dataset's history (partitioned by `date`) or its current table.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    dest: &'a Destination,
    spec: TableSpec<'a>,
    format: OutputFormat,
}

/// A partition of a history table as it is now.
#[derive(Debug, Clone)]
pub struct Partition {
    pub date: NaiveDate,
    /// Paths relative to the lake root, in write order.
    pub files: Vec<String>,
    /// What tells two states of the partition apart: its files' checksums (Parquet reuses part
    /// names across reruns) or their names (a Delta table's are unique to the run).
    pub identity: Vec<String>,
}

impl<'a> Table<'a> {
    /// `source`'s `schema` history table.
    pub fn history(
        dest: &'a Destination,
        source: &'a str,
        schema: &'a DatasetSchema,
        format: OutputFormat,
    ) -> Self {
        Table { dest, spec: TableSpec::history(source, schema), format }
    }

    /// `source`'s `schema` current table (one row per key).
    pub fn current(
        dest: &'a Destination,
        source: &'a str,
        schema: &'a DatasetSchema,
        format: OutputFormat,
    ) -> Self {
        Table { dest, spec: TableSpec::current(source, schema), format }
    }

    /// The format `source`'s `dataset` history is already written in, if it holds anything.
    pub async fn found(
        dest: &Destination,
        source: &str,
        dataset: &str,
    ) -> Result<Option<OutputFormat>, SinkError> {
        delta::existing_format(dest, &layout::dataset_dir(source, dataset)).await
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The table's directory, relative to the lake root.
    pub fn dir(&self) -> String {
        self.spec.relative()
    }

    pub fn source(&self) -> &'a str {
        self.spec.source
    }

    fn dataset(&self) -> &str {
        &self.spec.schema.dataset
    }

    /// Makes `staged` the only files of the window `commit` names; returns them at their final
    /// paths, with the Delta table version that holds them.
    pub async fn replace_window(
        &self,
        commit: &WindowCommit,
        staged: &[WrittenFile],
    ) -> Result<(Vec<WrittenFile>, Option<u64>), SinkError> {
        match self.format {
            OutputFormat::Parquet => {
                let files = commit::publish_partition(
                    self.dest,
                    self.spec.source,
                    self.dataset(),
                    commit.date,
                    staged,
                )
                .await?;
                Ok((files, None))
            }
            OutputFormat::Delta => {
                let committed = delta::publish(self.dest, self.spec, commit, staged).await?;
                Ok((committed.files, Some(committed.table_version)))
            }
        }
    }

    /// Adds `staged` to the table in place of `replaced` (`None`: of everything); returns the
    /// files at their final paths, under names unique to `commit`'s run, and the Delta version.
    /// Parquet keeps the replaced files until [`Table::keep_only`]: the caller's manifest is the
    /// commit point.
    pub async fn add_replacing(
        &self,
        commit: &WindowCommit,
        staged: &[WrittenFile],
        replaced: Option<&BTreeSet<String>>,
    ) -> Result<(Vec<WrittenFile>, Option<u64>), SinkError> {
        match self.format {
            OutputFormat::Parquet => {
                Ok((commit::publish_unique(self.dest, &self.dir(), staged, &commit.run_id).await?, None))
            }
            OutputFormat::Delta => {
                let replaces = replaced.map_or(Replaces::Everything, Replaces::Files);
                let Committed { files, table_version, .. } =
                    delta::publish_replacing(self.dest, self.spec, commit, staged, replaces).await?;
                Ok((files, Some(table_version)))
            }
        }
    }

    /// Deletes the files of a plain Parquet table that `listed` does not name (a Delta table's
    /// log already dropped them; [`Table::vacuum`] deletes them).
    pub async fn keep_only(&self, listed: &BTreeSet<String>) -> Result<(), SinkError> {
        if self.format == OutputFormat::Parquet {
            commit::delete_except(self.dest, &self.dir(), listed).await?;
        }
        Ok(())
    }

    /// Whether the table still holds exactly `files` (Parquet) or is still at `version` (Delta).
    pub async fn is_exactly<'f>(
        &self,
        mut files: impl Iterator<Item = &'f str>,
        version: Option<u64>,
    ) -> Result<bool, SinkError> {
        Ok(match self.format {
            OutputFormat::Parquet => {
                let present: BTreeSet<String> =
                    commit::list_files(self.dest, &self.dir()).await?.into_iter().collect();
                files.all(|f| present.contains(f))
            }
            OutputFormat::Delta => match delta::open_table(self.dest, &self.dir()).await? {
                Some(table) => table.version() == version,
                None => false,
            },
        })
    }

    /// The data files of a window as they are now: a Parquet partition's as listed (after a
    /// crash mid-publish some may be new, some old), a Delta table's from the window's record.
    pub async fn window_files(&self, record: &WindowRecord) -> Result<Vec<String>, SinkError> {
        match self.format {
            OutputFormat::Parquet => {
                let dir = layout::partition_dir(self.spec.source, self.dataset(), record.date);
                let mut files = commit::list_files(self.dest, &dir).await?;
                files.retain(|f| f.ends_with(".parquet"));
                files.sort();
                Ok(files)
            }
            OutputFormat::Delta => Ok(record
                .datasets
                .get(self.dataset())
                .map(|d| d.files.iter().map(|f| f.path.clone()).collect())
                .unwrap_or_default()),
        }
    }

    /// A Parquet partition's files when they are not those `recorded` names (a run killed
    /// between replacing them and saving the record); `None` when they are, and always for a
    /// Delta table, whose log the record follows.
    pub async fn unrecorded_files(
        &self,
        date: NaiveDate,
        recorded: &[WrittenFile],
    ) -> Result<Option<Vec<String>>, SinkError> {
        if self.format == OutputFormat::Delta {
            return Ok(None);
        }
        let listed =
            commit::list_files(self.dest, &layout::partition_dir(self.spec.source, self.dataset(), date))
                .await?;
        let named: Vec<&str> = recorded.iter().map(|f| f.path.as_str()).collect();
        if listed.iter().map(String::as_str).ne(named.iter().copied()) {
            return Ok(Some(listed));
        }
        for file in recorded {
            let path = self.dest.path(&file.path);
            let meta = object_store::ObjectStoreExt::head(&self.dest.store, &path)
                .await
                .map_err(|e| SinkError::store(&path, e))?;
            if meta.size != file.bytes {
                return Ok(Some(listed));
            }
        }
        Ok(None)
    }

    /// Whether the window records are the table's index (plain Parquet): [`Table::partitions`]
    /// reads them; a Delta table's log is its own.
    pub fn indexed_by_records(&self) -> bool {
        self.format == OutputFormat::Parquet
    }

    /// The done windows' partitions of a history table: from `records` for Parquet, from the
    /// table's latest version for Delta (whatever the records say; `records` may be empty).
    pub async fn partitions(&self, records: &[WindowRecord]) -> Result<Vec<Partition>, SinkError> {
        match self.format {
            OutputFormat::Parquet => Ok(records
                .iter()
                .filter(|r| r.status == crate::state::WindowStatus::Done)
                .filter_map(|r| {
                    let written = &r.datasets.get(self.dataset())?.files;
                    Some(Partition {
                        date: r.date,
                        files: written.iter().map(|f| f.path.clone()).collect(),
                        identity: written.iter().map(|f| f.sha256.clone()).collect(),
                    })
                })
                .collect()),
            OutputFormat::Delta => self.delta_partitions().await,
        }
    }

    /// A Delta table's active files grouped by their `date` partition.
    async fn delta_partitions(&self) -> Result<Vec<Partition>, SinkError> {
        let table_dir = self.dir();
        let Some(table) = delta::open_table(self.dest, &table_dir).await? else {
            return Ok(Vec::new());
        };
        let files: Vec<(String, Option<String>)> = table
            .get_active_add_actions_by_partitions(&[])
            .map_ok(|file| {
                let date = file.partition_values_map().remove(PARTITION_COLUMN).flatten();
                (format!("{table_dir}/{}", file.path()), date)
            })
            .try_collect()
            .await
            .map_err(|e| delta::table_error(&table_dir)(e))?;
        let mut by_date: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
        for (path, date) in files {
            let date =
                date.and_then(|d| d.parse::<NaiveDate>().ok()).ok_or_else(|| SinkError::CorruptState {
                    path: path.clone(),
                    message: "a data file of the Delta table has no valid date partition value".into(),
                })?;
            by_date.entry(date).or_default().push(path);
        }
        Ok(by_date
            .into_iter()
            .map(|(date, mut files)| {
                files.sort();
                Partition { date, identity: files.clone(), files }
            })
            .collect())
    }

    /// Rewrites of several windows (an erasure): published one by one as they come (Parquet),
    /// or together in one commit at the end (Delta).
    pub fn rewrites(&self) -> Rewrites<'a> {
        Rewrites { table: *self, pending: BTreeMap::new() }
    }

    /// Deletes files no table version newer than `retention` references (Delta; a plain
    /// Parquet table holds no unreferenced files and returns `None`).
    pub async fn vacuum(
        &self,
        retention: std::time::Duration,
        dry_run: bool,
    ) -> Result<Option<delta::Vacuumed>, SinkError> {
        match self.format {
            OutputFormat::Parquet => Ok(None),
            OutputFormat::Delta => delta::vacuum(self.dest, &self.dir(), retention, dry_run).await,
        }
    }
}

/// Window rewrites of one history table: see [`Table::rewrites`].
pub struct Rewrites<'a> {
    table: Table<'a>,
    pending: BTreeMap<NaiveDate, Vec<WrittenFile>>,
}

impl Rewrites<'_> {
    /// Makes `staged` the window's files: now, returning them at their final paths (Parquet), or
    /// at [`Rewrites::finish`] (Delta, `None` now).
    pub async fn replace(
        &mut self,
        date: NaiveDate,
        staged: Vec<WrittenFile>,
    ) -> Result<Option<Vec<WrittenFile>>, SinkError> {
        match self.table.format {
            OutputFormat::Parquet => {
                let table = &self.table;
                Ok(Some(
                    commit::publish_partition(table.dest, table.spec.source, table.dataset(), date, &staged)
                        .await?,
                ))
            }
            OutputFormat::Delta => {
                self.pending.insert(date, staged);
                Ok(None)
            }
        }
    }

    /// Commits the deferred rewrites as one Delta commit; returns each window's files at their
    /// final paths (nothing for Parquet, whose rewrites are already in place).
    pub async fn finish(self, run_id: &str) -> Result<BTreeMap<NaiveDate, Vec<WrittenFile>>, SinkError> {
        if self.pending.is_empty() {
            return Ok(BTreeMap::new());
        }
        delta::publish_partitions(self.table.dest, self.table.spec, run_id, &self.pending).await
    }
}

impl OutputFormat {
    /// The DuckDB table function reading a table at `location` (`partitioned`: a history table,
    /// with its `date` partitions).
    pub fn duckdb_scan(self, location: &str, partitioned: bool) -> String {
        self.scan(location, partitioned, ", hive_types = {'date': DATE}")
    }

    /// [`OutputFormat::duckdb_scan`] without braces, for templates that give braces their own
    /// meaning (dbt renders `{{ }}` as Jinja): the `date` partition is typed by DuckDB's autocast,
    /// which reads `date=YYYY-MM-DD` as a DATE.
    pub fn duckdb_scan_without_braces(self, location: &str, partitioned: bool) -> String {
        self.scan(location, partitioned, "")
    }

    fn scan(self, location: &str, partitioned: bool, hive_types: &str) -> String {
        let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
        match (self, partitioned) {
            (OutputFormat::Parquet, true) => format!(
                "read_parquet({}, hive_partitioning = true{hive_types}, union_by_name = true)",
                quoted(&format!("{location}/date=*/*.parquet"))
            ),
            (OutputFormat::Parquet, false) => {
                format!("read_parquet({}, union_by_name = true)", quoted(&format!("{location}/*.parquet")))
            }
            (OutputFormat::Delta, _) => format!("delta_scan({})", quoted(location)),
        }
    }

    /// Whether a table's schema is its own, whatever its windows were written with: a Delta
    /// table's evolves only by adding columns, so a window it keeps or rewrites alike must fit
    /// it; plain Parquet files each carry their own, and a rewritten window may differ.
    pub fn schema_is_table_wide(self) -> bool {
        self == OutputFormat::Delta
    }

    /// The DuckDB extension its scan needs beyond the built-in ones.
    pub fn duckdb_extension(self) -> Option<&'static str> {
        match self {
            OutputFormat::Parquet => None,
            OutputFormat::Delta => Some("delta"),
        }
    }
}
