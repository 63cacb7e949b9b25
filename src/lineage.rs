//! OpenLineage run events, for the tools that collect lineage (Marquez, Airflow, Dagster,
//! DataHub): a START when a run of a source begins, then a COMPLETE or a FAIL (with its error
//! message) when it ends — job namespace `cxlake`, job `<command>.<source>` (`sync.saltedcx`),
//! the platform's API as the input dataset and every table written as an output, with its schema
//! (the declaration's columns and descriptions, then the load columns) and, at the end, the rows
//! and bytes the run wrote to it. Sent to an HTTP endpoint (`POST <url>/api/v1/lineage`, as the
//! OpenLineage clients do) or appended to a file, one event per line. An event never holds a
//! secret or a presigned URL: inputs are named by scheme, host and port, errors are the messages
//! cxlake prints. Lineage is a by-product: failing to deliver an event is a warning, never a
//! failed run.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::report::RunReport;
use crate::schema::load::{stored_schema, DESCRIPTION_KEY};
use crate::schema::{DatasetKind, DatasetSchema};
use crate::sink::{layout, Destination};

const PRODUCER: &str = concat!("https://github.com/cxlake/cxlake/tree/v", env!("CARGO_PKG_VERSION"));
const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const STATISTICS_FACET: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
const ERROR_FACET: &str =
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";

/// Where events go.
#[derive(Debug, Clone)]
pub enum Target {
    /// An OpenLineage HTTP endpoint; `api_key` is sent as a bearer token to it alone.
    Http { url: url::Url, api_key: Option<crate::sources::http::Secret> },
    /// A file the events are appended to, one JSON object per line.
    File(PathBuf),
}

impl Target {
    /// `--openlineage-url` (a base URL: events go to `<url>/api/v1/lineage`, unless it names a
    /// path of its own) or `--openlineage-file`.
    pub fn from_args(url: Option<&str>, file: Option<PathBuf>) -> Result<Option<Target>, String> {
        if let Some(path) = file {
            return Ok(Some(Target::File(path)));
        }
        let Some(text) = url else { return Ok(None) };
        let mut url = url::Url::parse(text).map_err(|e| format!("--openlineage-url `{text}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("--openlineage-url `{text}`: an http:// or https:// URL"));
        }
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/api/v1/lineage");
        }
        let api_key = crate::secrets::var("OPENLINEAGE_API_KEY").map(crate::sources::http::Secret::new);
        Ok(Some(Target::Http { url, api_key }))
    }
}

/// One table a run writes, as a lineage output.
struct Output {
    namespace: String,
    name: String,
    dataset: String,
    fields: Vec<Value>,
}

/// The events of one run of one source.
pub struct RunLineage {
    target: Target,
    run_id: uuid::Uuid,
    job: String,
    input: Option<(String, String)>,
    outputs: Vec<Output>,
    our_run_id: String,
}

/// A lake table as OpenLineage names a dataset: `file` and the absolute path on local disk,
/// `s3://bucket` and the key on S3.
fn dataset_name(dest: &Destination, relative: &str) -> (String, String) {
    match &dest.s3 {
        Some(s3) => (format!("s3://{}", s3.bucket), dest.path(relative).to_string()),
        None => ("file".into(), dest.location(relative)),
    }
}

/// The fields of a table: the stored schema (declared and load columns), then `date`.
fn schema_fields(schema: &DatasetSchema) -> Vec<Value> {
    let stored = stored_schema(schema);
    let mut fields: Vec<Value> = stored
        .fields()
        .iter()
        .map(|f| {
            let mut field = json!({"name": f.name(), "type": f.data_type().to_string()});
            if let Some(description) = f.metadata().get(DESCRIPTION_KEY).filter(|d| !d.is_empty()) {
                field["description"] = json!(description);
            }
            field
        })
        .collect();
    fields.push(json!({"name": "date", "type": "Date32", "description": "The window's day."}));
    fields
}

/// The tables a run writes: its datasets' histories in `dest`, and their current tables when
/// it keeps them.
pub struct Written<'a> {
    pub dest: &'a Destination,
    pub datasets: &'a [std::sync::Arc<DatasetSchema>],
    pub current_tables: bool,
}

impl RunLineage {
    /// The events of `command` (`sync`, `replay`, `convert`) of `source` (cxlake's run
    /// `our_run_id`), reading `input` and writing `written`.
    pub fn new(
        target: Target,
        command: &str,
        source: &str,
        input: Option<(String, String)>,
        written: Written<'_>,
        our_run_id: &str,
    ) -> RunLineage {
        let Written { dest, datasets, current_tables } = written;
        let mut outputs = Vec::new();
        for schema in datasets {
            let (namespace, name) = dataset_name(dest, &layout::dataset_dir(source, &schema.dataset));
            outputs.push(Output {
                namespace,
                name,
                dataset: schema.dataset.clone(),
                fields: schema_fields(schema),
            });
            if current_tables && schema.kind == DatasetKind::Entities {
                let (namespace, name) = dataset_name(dest, &layout::current_dir(source, &schema.dataset));
                outputs.push(Output {
                    namespace,
                    name,
                    dataset: format!("{}_current", schema.dataset),
                    fields: schema_fields(schema),
                });
            }
        }
        RunLineage {
            target,
            run_id: uuid::Uuid::new_v4(),
            job: format!("{command}.{source}"),
            input,
            outputs,
            our_run_id: our_run_id.to_string(),
        }
    }

    fn event(&self, event_type: &str, report: Option<&RunReport>, error: Option<&str>) -> Value {
        let mut run_facets = json!({
            "cxlake": {"_producer": PRODUCER, "_schemaURL": format!("{PRODUCER}#cxlake-run-facet"), "runId": self.our_run_id},
        });
        if let Some(message) = error {
            run_facets["errorMessage"] = json!({
                "_producer": PRODUCER, "_schemaURL": ERROR_FACET,
                "message": message, "programmingLanguage": "rust",
            });
        }
        let stats = report.map(RunReport::rows_by_dataset).unwrap_or_default();
        let outputs: Vec<Value> = self
            .outputs
            .iter()
            .map(|output| {
                let mut dataset = json!({
                    "namespace": output.namespace,
                    "name": output.name,
                    "facets": {"schema": {"_producer": PRODUCER, "_schemaURL": SCHEMA_FACET, "fields": output.fields}},
                });
                if let Some((rows, _, bytes)) = stats.get(&output.dataset) {
                    dataset["outputFacets"] = json!({"outputStatistics": {
                        "_producer": PRODUCER, "_schemaURL": STATISTICS_FACET, "rowCount": rows, "size": bytes,
                    }});
                }
                dataset
            })
            .collect();
        let inputs: Vec<Value> = self
            .input
            .iter()
            .map(|(namespace, name)| json!({"namespace": namespace, "name": name}))
            .collect();
        json!({
            "eventType": event_type,
            "eventTime": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": self.run_id.to_string(), "facets": run_facets},
            "job": {"namespace": "cxlake", "name": self.job, "facets": {"jobType": {
                "_producer": PRODUCER, "_schemaURL": JOB_TYPE_FACET,
                "processingType": "BATCH", "integration": "CXLAKE", "jobType": "JOB",
            }}},
            "inputs": inputs,
            "outputs": outputs,
        })
    }

    /// The run began.
    pub async fn start(&self) {
        self.emit(self.event("START", None, None)).await;
    }

    /// The run ended: COMPLETE when every window committed, else FAIL with what went wrong.
    pub async fn end(&self, report: &RunReport) {
        let failures: Vec<String> = report
            .windows
            .iter()
            .filter_map(|w| w.error.as_ref().map(|e| format!("{}: {e}", w.date)))
            .chain(report.fatal_error.clone())
            .chain(report.current_error.iter().map(|e| format!("current tables: {e}")))
            .collect();
        let event = if report.exit_code() == crate::report::exit_code::OK {
            self.event("COMPLETE", Some(report), None)
        } else {
            let message =
                if failures.is_empty() { "the run did not finish".to_string() } else { failures.join("; ") };
            self.event("FAIL", Some(report), Some(&message))
        };
        self.emit(event).await;
    }

    /// The run stopped with `error` before it had a report.
    pub async fn fail(&self, error: &str) {
        self.emit(self.event("FAIL", None, Some(error))).await;
    }

    async fn emit(&self, event: Value) {
        let delivered = match &self.target {
            Target::File(path) => append_line(path, &event).map_err(|e| format!("{}: {e}", path.display())),
            Target::Http { url, api_key } => post(url, api_key.as_ref(), &event).await,
        };
        if let Err(e) = delivered {
            tracing::warn!(error = %e, "Could not deliver an OpenLineage event; the run goes on");
        }
    }
}

fn append_line(path: &std::path::Path, event: &Value) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    file.write_all(&line)
}

async fn post(
    url: &url::Url,
    api_key: Option<&crate::sources::http::Secret>,
    event: &Value,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.post(url.clone()).json(event);
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose());
    }
    let response =
        request.send().await.map_err(|e| format!("{}: {}", crate::sources::origin(url), e.without_url()))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("{}: HTTP {status}", crate::sources::origin(url))),
    }
}
