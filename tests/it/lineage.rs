//! Issue 26: OpenLineage run events. A sync sends START and COMPLETE to a receiver on loopback
//! (with the lineage API key, and never the platform's), a failing one START and FAIL to a file;
//! every event is parsed by the openlineage-python client's own models, and what they say is
//! compared with the run report and the declarations.

use std::sync::{Arc, Mutex};

use cxlake::schema::DatasetKind;

use crate::common::*;

/// What the receiver was sent: each request's Authorization header and body.
type Received = Arc<Mutex<Vec<(Option<String>, String)>>>;

/// A lineage receiver on 127.0.0.1: every POST to `/api/v1/lineage`, with its Authorization.
async fn receiver() -> (url::Url, Received, tokio::task::JoinHandle<()>) {
    let received: Received = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/api/v1/lineage",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let store = store.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                store.lock().unwrap().push((auth, body));
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, task)
}

async fn parsed(events: &str) -> Vec<serde_json::Value> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), events).unwrap();
    python_json("openlineage_events.py", &[file.path().to_str().unwrap()]).await.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_emits_start_and_complete_and_a_failed_one_start_and_fail() {
    let secret = "canary-lineage-api-key-8c1d";
    let emulator = emulator(cxlake::sources::saltedcx::emulator::EmulatorConfig {
        api_key: secret.to_string(),
        ..emulator_config()
    })
    .await;
    let (url, received, server) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let report_json = dir.path().join("report.json");
    let mut env = api_env(&emulator);
    env.push(("OPENLINEAGE_API_KEY", "lineage-key".to_string()));
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        lake.to_str().unwrap(),
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
        "--poll-interval",
        "10ms",
        "--openlineage-url",
        url.as_str(),
        "--report-json",
        report_json.to_str().unwrap(),
    ];
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    server.abort();
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "{received:?}");
    for (auth, body) in &received {
        assert_eq!(auth.as_deref(), Some("Bearer lineage-key"), "the lineage key, to the lineage endpoint");
        assert!(!body.contains(secret), "the platform's key is never in an event: {body}");
        assert!(!body.contains("X-Amz-") && !body.contains("signature="), "no presigned URL: {body}");
    }
    let lines: Vec<&str> = received.iter().map(|(_, body)| body.as_str()).collect();
    let events = parsed(&lines.join("\n")).await;
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["START", "COMPLETE"]);
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"], "one run");
    for event in &events {
        assert_eq!(event["job"]["namespace"], "cxlake");
        assert_eq!(event["job"]["name"], "sync.saltedcx");
        let origin = format!("http://{}", emulator.base_url().host_str().unwrap());
        let input = &event["inputs"][0];
        assert!(input["namespace"].as_str().unwrap().starts_with(&origin), "{input}");
        assert_eq!(input["name"], "saltedcx");
    }

    // Every table written, with its declared columns, the load columns and the date; at the end
    // the rows and bytes the run report says it wrote.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_json).unwrap()).unwrap();
    let complete = &events[1];
    let outputs = complete["outputs"].as_array().unwrap();
    let schemas = all_schemas();
    let entities = schemas.iter().filter(|s| s.kind == DatasetKind::Entities).count();
    assert_eq!(outputs.len(), schemas.len() + entities, "history and current tables");
    for schema in &schemas {
        let name = lake.join(format!("saltedcx/{}", schema.dataset)).display().to_string();
        let output = outputs.iter().find(|o| o["name"] == name.as_str()).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(output["namespace"], "file");
        let fields: Vec<&str> = output["facets"]["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        expected.extend(["_cxlake_loaded_at", "_cxlake_run_id", "date"]);
        assert_eq!(fields, expected, "{}", schema.dataset);
        // The run report's own total of a field of this dataset over its windows.
        let total = |field: &str| -> u64 {
            let windows = report["windows"].as_array().unwrap();
            windows.iter().map(|w| w["datasets"][&schema.dataset][field].as_u64().unwrap()).sum()
        };
        let (rows, bytes) = (total("rows_written"), total("bytes"));
        let stats = &output["outputFacets"]["outputStatistics"];
        assert_eq!(stats["rowCount"], rows, "{}", schema.dataset);
        assert_eq!(stats["size"], bytes, "{}", schema.dataset);
        assert!(rows > 0);
    }

    // A run the platform refuses: START, then FAIL with the error, to a file.
    let events_file = dir.path().join("lineage.ndjson");
    let mut wrong = api_env(&emulator);
    wrong.retain(|(k, _)| *k != "SALTEDCX_API_KEY");
    wrong.push(("SALTEDCX_API_KEY", "wrong-key-3f9e".to_string()));
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        lake.to_str().unwrap(),
        "--from",
        "2024-03-05",
        "--to",
        "2024-03-06",
        "--poll-interval",
        "10ms",
        "--openlineage-file",
        events_file.to_str().unwrap(),
    ];
    let out = run_cxlake(&args, &wrong).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let text = std::fs::read_to_string(&events_file).unwrap();
    assert!(!text.contains("wrong-key-3f9e"));
    let events = parsed(&text).await;
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["START", "FAIL"]);
    let error = &events[1]["run"]["facets"]["errorMessage"];
    assert!(error["message"].as_str().unwrap().contains("401"), "{error}");
    assert_eq!(error["programmingLanguage"], "rust");
}
