//! The declarations a lake's windows were written with, and whether a run may write under its own.
//!
//! Every window record names, per dataset, the fingerprint of the declaration its files were
//! written with, and the lake keeps the declaration's text under
//! `_cxlake/declarations/<source>/<dataset>/<fingerprint>.toml` (content-addressed, written once),
//! so a lake never depends on a schema file that may be gone. Before a run writes, its
//! declaration is compared with the declaration of every window it leaves as it is: the same
//! columns, or new nullable ones ([`Evolution::Additive`]: old files read the new columns as
//! null) go ahead; anything else — a column dropped, a type changed — would leave a table whose
//! files cannot be read together, so the run is refused (exit 2) with the two ways out: write
//! with the lake's declaration, or rewrite every window with the new one (`cxlake replay`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::schema::{parse_schema, DatasetSchema, Evolution};
use crate::sink::{layout, Destination, SinkError};
use crate::state::{WindowRecord, WindowStatus};

#[derive(Debug, thiserror::Error)]
pub enum DeclarationError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{dataset}: {windows} of {dest} {were} written with another declaration ({fingerprint}, kept at {kept}), and this run's declaration ({origin}) is not a continuation of it: {why}. Old and new files could not be read as one table, so nothing was written. Either run with the lake's declaration (copy {kept} to DIR/{source_name}/{short}.toml and pass --schemas DIR, or set `schemas_dir` in cxlake.toml), or {rewrite}")]
    Incompatible {
        dataset: String,
        source_name: String,
        short: String,
        windows: String,
        were: &'static str,
        dest: String,
        fingerprint: String,
        kept: String,
        origin: String,
        why: String,
        /// The other way out: a replay of every window, or (a Delta table, whose columns cannot
        /// change type in place) a new destination.
        rewrite: String,
    },
    #[error("{path}: the lake's copy of a declaration does not load: {message}")]
    Corrupt { path: String, message: String },
}

/// Keeps a copy of `schema`'s declaration in the lake (once: the name is its fingerprint).
pub async fn keep(dest: &Destination, schema: &DatasetSchema) -> Result<(), SinkError> {
    let declaration = &schema.declaration;
    let relative = layout::declaration_file(&schema.source, &schema.dataset, &declaration.fingerprint);
    let path = dest.path(&relative);
    let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    let payload = PutPayload::from(declaration.text.clone().into_bytes());
    match dest.store.put_opts(&path, payload, options).await {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        // A store without create-only puts: the same bytes again are harmless.
        Err(object_store::Error::NotImplemented { .. }) => {
            let payload = PutPayload::from(declaration.text.clone().into_bytes());
            dest.store.put(&path, payload).await.map(|_| ()).map_err(|e| SinkError::store(&path, e))
        }
        Err(e) => Err(SinkError::store(&path, e)),
    }
}

/// The declaration a window of `source.dataset` was written with, from the lake's copy.
pub async fn load(
    dest: &Destination,
    source: &str,
    dataset: &str,
    fingerprint: &str,
) -> Result<Option<Arc<DatasetSchema>>, DeclarationError> {
    let relative = layout::declaration_file(source, dataset, fingerprint);
    let path = dest.path(&relative);
    let bytes = match dest.store.get(&path).await {
        Ok(found) => found.bytes().await.map_err(|e| SinkError::store(&path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(SinkError::store(&path, e).into()),
    };
    let corrupt = |message: String| DeclarationError::Corrupt { path: relative.clone(), message };
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| corrupt(e.to_string()))?;
    let origin = format!("{} (in the lake)", dest.display_path(&relative));
    parse_schema(&origin, &text).map(|s| Some(Arc::new(s))).map_err(|e| corrupt(e.to_string()))
}

/// What a run's declarations do to the lake's tables: per dataset, the columns they add.
#[derive(Debug, Default)]
pub struct Checked {
    pub added: BTreeMap<String, Vec<String>>,
}

/// Checks `datasets` (this run's declarations) against the declarations of every done window of
/// `records` that the run leaves as it is (`rewrites(dataset, date)` says which it rewrites). A
/// table whose schema is its own (`table_wide`: Delta) evolves only by adding columns, whatever
/// is rewritten, so every window counts.
pub async fn check(
    dest: &Destination,
    datasets: &[Arc<DatasetSchema>],
    records: &[WindowRecord],
    rewrites: impl Fn(&str, NaiveDate) -> bool,
    table_wide: bool,
) -> Result<Checked, DeclarationError> {
    let mut checked = Checked::default();
    for schema in datasets {
        // Each other declaration the untouched windows were written with, and those windows.
        let mut others: BTreeMap<&str, Vec<NaiveDate>> = BTreeMap::new();
        for record in records {
            if record.status != WindowStatus::Done || (!table_wide && rewrites(&schema.dataset, record.date))
            {
                continue;
            }
            let Some(landed) = record.datasets.get(&schema.dataset) else { continue };
            match landed.declaration.as_deref() {
                Some(fingerprint) if fingerprint != schema.declaration.fingerprint => {
                    others.entry(fingerprint).or_default().push(record.date);
                }
                // Windows from before declarations were recorded are taken to match.
                _ => {}
            }
        }
        for (fingerprint, dates) in others {
            let relative = layout::declaration_file(&schema.source, &schema.dataset, fingerprint);
            let Some(old) = load(dest, &schema.source, &schema.dataset, fingerprint).await? else {
                tracing::warn!(dataset = %schema.qualified_name(), declaration = fingerprint, "The lake has no copy of a declaration its windows were written with; assuming it matches");
                continue;
            };
            match schema.evolution_from(&old) {
                Evolution::Same => {}
                Evolution::Additive { added } => {
                    let entry = checked.added.entry(schema.dataset.clone()).or_default();
                    for column in added {
                        if !entry.contains(&column) {
                            entry.push(column);
                        }
                    }
                }
                Evolution::Incompatible(why) => {
                    let windows = match (dates.first(), dates.last()) {
                        (Some(first), Some(last)) if dates.len() > 1 => {
                            format!("{} windows ({first} … {last})", dates.len())
                        }
                        (Some(first), _) => format!("window {first}"),
                        _ => "windows".to_string(),
                    };
                    return Err(DeclarationError::Incompatible {
                        dataset: schema.qualified_name(),
                        source_name: schema.source.clone(),
                        short: schema.dataset.clone(),
                        were: if dates.len() > 1 { "were" } else { "was" },
                        windows,
                        dest: dest.display.clone(),
                        fingerprint: fingerprint.to_string(),
                        kept: dest.display_path(&relative),
                        origin: schema.declaration.origin.clone(),
                        why,
                        rewrite: if table_wide {
                            "land this declaration in a new --dest: a Delta table's columns are only ever added, never dropped or retyped in place".into()
                        } else {
                            format!("rewrite every window with this one from the raw archive: `cxlake replay {} --dest {}` with the same --schemas", schema.source, dest.display)
                        },
                    });
                }
            }
        }
    }
    Ok(checked)
}

/// The declaration one window's dataset was written with (from the lake's copy), or `fallback`
/// when the record names none (or names `fallback` itself).
pub async fn of_window(
    dest: &Destination,
    fallback: &Arc<DatasetSchema>,
    landed: &crate::state::DatasetRecord,
) -> Result<Arc<DatasetSchema>, DeclarationError> {
    match landed.declaration.as_deref() {
        Some(fingerprint) if fingerprint != fallback.declaration.fingerprint => {
            Ok(load(dest, &fallback.source, &fallback.dataset, fingerprint)
                .await?
                .unwrap_or_else(|| fallback.clone()))
        }
        _ => Ok(fallback.clone()),
    }
}

/// The declaration a dataset's table stands under: the one its most recently written window
/// used (every other window's is a part of it, as [`check`] sees to), else `fallback`. Commands
/// that rewrite what is there (`forget`, `current`) use it, so they never narrow a table to the
/// built-in declaration when it was written with the user's.
pub async fn latest(
    dest: &Destination,
    fallback: &Arc<DatasetSchema>,
    records: &[WindowRecord],
) -> Result<Arc<DatasetSchema>, DeclarationError> {
    let newest = records
        .iter()
        .filter(|r| r.status == WindowStatus::Done)
        .filter_map(|r| Some((r.finished_at, r.datasets.get(&fallback.dataset)?)))
        .max_by_key(|(finished, _)| *finished);
    match newest {
        Some((_, landed)) => of_window(dest, fallback, landed).await,
        None => Ok(fallback.clone()),
    }
}
