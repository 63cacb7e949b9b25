//! `cxlake forget`: a customer and everything that references it erased from a Parquet and a
//! Delta lake (history, current tables, raw archive, older Delta files), an e-mail address from a
//! Dixa lake (JSON raw files rewritten, a replay does not bring it back); every other row
//! unchanged, a second run changes nothing, and a run killed mid-way is completed by the next.

use std::collections::BTreeSet;

use cxlake::schema::SchemaRegistry;

use crate::common::*;
use crate::dixa::{dixa_emulator, dixa_emulator_config, dixa_plan};

fn column_index(source: &str, dataset: &str, column: &str) -> usize {
    static REGISTRY: std::sync::OnceLock<SchemaRegistry> = std::sync::OnceLock::new();
    let registry = REGISTRY.get_or_init(|| SchemaRegistry::embedded().unwrap());
    registry.dataset(source, dataset).unwrap().column_index(column).unwrap()
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    }
}

/// Every file of the lake as text a value could hide in: Parquet decoded (its pages are
/// compressed), raw files decompressed, the rest as stored.
fn lake_texts(lake: &std::path::Path) -> Vec<(String, String)> {
    files_under(lake)
        .into_iter()
        .map(|file| {
            let path = lake.join(&file);
            let bytes = std::fs::read(&path).unwrap();
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if file.ends_with(".parquet") {
                for batch in read_parquet_file(&path) {
                    for column in batch.columns() {
                        text.push_str(&cells_text(column));
                    }
                }
            }
            if file.ends_with(".zst") {
                text.push_str(&String::from_utf8_lossy(&zstd::decode_all(bytes.as_slice()).unwrap()));
            }
            (file, text)
        })
        .collect()
}

/// Every text value of a column (lists item by item), one per line.
fn cells_text(column: &arrow::array::ArrayRef) -> String {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().flatten().collect::<Vec<_>>().join("\n"),
        DataType::List(_) => cells_text(column.as_list::<i32>().values()),
        DataType::Struct(_) => {
            column.as_struct().columns().iter().map(cells_text).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

fn found(lake: &std::path::Path, values: &BTreeSet<String>) -> Vec<String> {
    lake_texts(lake)
        .into_iter()
        .flat_map(|(file, text)| {
            values
                .iter()
                .filter(|v| text.contains(v.as_str()))
                .map(|v| format!("{v} in {file}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn forget(lake: &std::path::Path, args: &[&str]) -> Output {
    let mut all = vec!["forget", "--dest", lake.to_str().unwrap()];
    all.extend(args);
    run_cxlake(&all, NO_ENV).await
}

/// Syncs Salted CX days from `2024-03-01` to `to` from the emulator into `dest`.
async fn sync_saltedcx(
    emulator: &cxlake::sources::saltedcx::emulator::Emulator,
    dest: &str,
    to: &str,
    format: &str,
    env: Vec<(String, String)>,
) {
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        dest,
        "--from",
        "2024-03-01",
        "--to",
        to,
        "--format",
        format,
        "--poll-interval",
        "10ms",
    ];
    let mut env = env;
    env.extend(api_env(emulator).into_iter().map(|(k, v)| (k.to_string(), v)));
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

async fn a_customer_and_what_references_it_are_erased(format: &str) {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    sync_saltedcx(&emulator, dest, "2024-03-03", format, Vec::new()).await;
    let windows = days("2024-03-01", 2);
    let rows = |dataset: &str| -> Vec<Vec<Vec<Cell>>> {
        windows.iter().map(|w| batch_rows(&read_partition(lake.path(), dataset, w.date))).collect()
    };
    let before: Vec<(&str, Vec<Vec<Vec<Cell>>>)> = DATASETS.iter().map(|d| (*d, rows(d))).collect();

    // The customer with the most engagements, and what hangs off it, from the lake as synced.
    let (engagement_contact, engagement_pid) = (
        column_index("saltedcx", "engagement", "contact_pid"),
        column_index("saltedcx", "engagement", "pid"),
    );
    let mut counts = std::collections::BTreeMap::new();
    for row in before.iter().find(|(d, _)| *d == "engagement").unwrap().1.iter().flatten() {
        if let Cell::Text(contact) = &row[engagement_contact] {
            *counts.entry(contact.clone()).or_insert(0) += 1;
        }
    }
    let customer = counts.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    let engagements: BTreeSet<String> = before[0]
        .1
        .iter()
        .flatten()
        .filter(|row| row[engagement_contact] == Cell::Text(customer.clone()))
        .map(|row| text(&row[engagement_pid]))
        .collect();
    assert!(engagements.len() >= 2, "{customer}: {engagements:?}");
    let erased = |dataset: &str, row: &Vec<Cell>| -> bool {
        let at = |column| &row[column_index("saltedcx", dataset, column)];
        match dataset {
            "customer" => *at("pid") == Cell::Text(customer.clone()),
            "engagement" => *at("contact_pid") == Cell::Text(customer.clone()),
            "turn" | "review" => matches!(at("engagement_pid"), Cell::Text(e) if engagements.contains(e)),
            _ => false,
        }
    };
    let turn_pids: BTreeSet<String> = before
        .iter()
        .find(|(d, _)| *d == "turn")
        .unwrap()
        .1
        .iter()
        .flatten()
        .filter(|row| erased("turn", row))
        .map(|row| text(&row[column_index("saltedcx", "turn", "pid")]))
        .collect();
    assert!(!turn_pids.is_empty());
    let mut person: BTreeSet<String> = engagements.clone();
    person.extend(turn_pids);
    person.insert(customer.clone());
    assert!(!found(lake.path(), &person).is_empty(), "the scan finds the person before");

    let key = format!("saltedcx.customer={customer}");
    let dry = forget(lake.path(), &["--key", &key, "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(dry.stdout.contains("would remove"), "{}", dry.stdout);
    assert_eq!(
        before,
        DATASETS.iter().map(|d| (*d, rows(d))).collect::<Vec<_>>(),
        "a dry run changes nothing"
    );

    let out = forget(lake.path(), &["--key", &key]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("saltedcx.turn: removed"), "{}", out.stdout);

    assert!(!out.stdout.contains(&customer), "the report never names the person: {}", out.stdout);
    for (dataset, days) in &before {
        let want: Vec<Vec<Vec<Cell>>> = days
            .iter()
            .map(|rows| rows.iter().filter(|row| !erased(dataset, row)).cloned().collect())
            .collect();
        assert_eq!(rows(dataset), want, "{dataset}: exactly the person's rows are gone");
    }
    assert_eq!(found(lake.path(), &person), Vec::<String>::new(), "no byte of the person anywhere");
    if format == "delta" {
        // One commit per table, whatever the number of windows it rewrote.
        for dataset in ["engagement", "turn"] {
            let log = lake.path().join(format!("saltedcx/{dataset}/_delta_log"));
            let rewrites = std::fs::read_dir(&log)
                .unwrap()
                .filter(|e| {
                    std::fs::read_to_string(e.as_ref().unwrap().path())
                        .unwrap_or_default()
                        .contains("cxlake:rewrite=")
                })
                .count();
            assert_eq!(rewrites, 1, "{dataset}: one erasure commit");
        }
    }
    let erasures = files_under(&lake.path().join("_cxlake/erasures"));
    assert_eq!(erasures.len(), 1, "{erasures:?}");

    let files = files_under(lake.path());
    let again = forget(lake.path(), &["--key", &key]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing left to remove") && again.stdout.contains("verified: no trace left"),
        "{}",
        again.stdout
    );
    let after: BTreeSet<String> =
        files_under(lake.path()).into_iter().filter(|f| !f.starts_with("_cxlake/")).collect();
    let was: BTreeSet<String> = files.into_iter().filter(|f| !f.starts_with("_cxlake/")).collect();
    assert_eq!(after, was, "a second forget changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_and_what_references_it_are_erased_from_a_parquet_lake() {
    a_customer_and_what_references_it_are_erased("parquet").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_and_what_references_it_are_erased_from_a_delta_lake() {
    a_customer_and_what_references_it_are_erased("delta").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_erased_from_json_data_and_raw_files_and_a_replay_does_not_bring_it_back() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let report =
        cxlake::pipeline::run_sync(&dixa_plan(&emulator, lake.path(), days("2024-03-01", 2))).await.unwrap();
    assert_eq!(report.exit_code(), 0);
    let email_at = column_index("dixa", "conversation", "requester_email");
    let conversations: Vec<Vec<Cell>> = days("2024-03-01", 2)
        .iter()
        .flat_map(|w| batch_rows(&read_source_partition(lake.path(), "dixa", "conversation", w.date)))
        .collect();
    let email = conversations.iter().find_map(|row| match &row[email_at] {
        Cell::Text(e) if e.contains('@') => Some(e.clone()),
        _ => None,
    });
    let email = email.expect("a requester e-mail");
    let person = BTreeSet::from([email.clone()]);
    assert!(!found(lake.path(), &person).is_empty());

    // Asked in another case: compared as normalised.
    let out = forget(lake.path(), &["--email", &format!("  {}  ", email.to_uppercase())]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("dixa.conversation: removed"), "{}", out.stdout);
    assert_eq!(found(lake.path(), &person), Vec::<String>::new());
    let left: usize = days("2024-03-01", 2)
        .iter()
        .map(|w| batch_rows(&read_source_partition(lake.path(), "dixa", "conversation", w.date)).len())
        .sum();
    let with_email = conversations.iter().filter(|row| row[email_at] == Cell::Text(email.clone())).count();
    assert_eq!(left, conversations.len() - with_email);

    // The API is gone; the archive is all there is, and it no longer holds the person.
    emulator.shutdown().await;
    let replay = run_cxlake(&["replay", "dixa", "--dest", lake.path().to_str().unwrap()], NO_ENV).await;
    assert_eq!(replay.code, 0, "{}\n{}", replay.stdout, replay.stderr);
    assert_eq!(found(lake.path(), &person), Vec::<String>::new(), "a replay does not bring the person back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_killed_after_its_first_publish_is_completed_by_the_next_parquet() {
    a_forget_killed_after_its_first_publish_is_completed_by_the_next("parquet").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_killed_after_its_first_publish_is_completed_by_the_next_delta() {
    a_forget_killed_after_its_first_publish_is_completed_by_the_next("delta").await
}

async fn a_forget_killed_after_its_first_publish_is_completed_by_the_next(format: &str) {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    sync_saltedcx(&emulator, dest, "2024-03-04", format, Vec::new()).await;
    let customer_at = column_index("saltedcx", "engagement", "contact_pid");
    let customer = days("2024-03-01", 3)
        .iter()
        .flat_map(|w| batch_rows(&read_partition(lake.path(), "engagement", w.date)))
        .find_map(|row| match &row[customer_at] {
            Cell::Text(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    let key = format!("saltedcx.customer={customer}");
    let killed =
        run_cxlake(&["forget", "--dest", dest, "--key", &key], &[("CXLAKE_FAILPOINT", "forget-published")])
            .await;
    assert_ne!(killed.code, 0, "the failpoint aborted it: {}", killed.stderr);
    let out = run_cxlake(&["forget", "--dest", dest, "--key", &key], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for w in days("2024-03-01", 3) {
        let engagements = batch_rows(&read_partition(lake.path(), "engagement", w.date));
        assert!(engagements.iter().all(|row| row[customer_at] != Cell::Text(customer.clone())), "{}", w.date);
    }
    assert_eq!(found(lake.path(), &BTreeSet::from([customer.clone()])), Vec::<String>::new());
    let status = run_cxlake(&["status", "--dest", dest], NO_ENV).await;
    assert!(!status.stdout.contains("interrupted"), "every window is done again: {}", status.stdout);
    // Every record describes the files that are there, with their rows.
    for w in days("2024-03-01", 3) {
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(lake.path().join(format!("_cxlake/state/saltedcx/date={}.json", w.date))).unwrap(),
        )
        .unwrap();
        for dataset in DATASETS {
            let entry = &record["datasets"][dataset];
            let recorded: BTreeSet<String> = entry["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap().to_string())
                .collect();
            let listed: BTreeSet<String> =
                files_under(&lake.path().join(format!("saltedcx/{dataset}/date={}", w.date)))
                    .into_iter()
                    .map(|f| format!("saltedcx/{dataset}/date={}/{f}", w.date))
                    .collect();
            assert_eq!(recorded, listed, "{dataset} {}", w.date);
            let rows = batch_rows(&read_partition(lake.path(), dataset, w.date)).len() as u64;
            assert_eq!(entry["stats"]["rows_written"].as_u64(), Some(rows), "{dataset} {}", w.date);
            for file in entry["files"].as_array().unwrap() {
                let bytes = std::fs::read(lake.path().join(file["path"].as_str().unwrap())).unwrap();
                assert_eq!(file["bytes"].as_u64(), Some(bytes.len() as u64));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_erased_from_a_delta_lake_on_s3() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let s3 = s3();
    let prefix = format!("forget-{}", uuid::Uuid::new_v4().simple());
    let dest = format!("s3://{}/{prefix}", s3.bucket);
    let emulator = emulator(emulator_config()).await;
    let env: Vec<(String, String)> = s3.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    sync_saltedcx(&emulator, &dest, "2024-03-03", "delta", env).await;
    let store = s3.store();
    let texts = || async {
        let objects: Vec<object_store::ObjectMeta> =
            store.list(Some(&object_store::path::Path::from(prefix.as_str()))).try_collect().await.unwrap();
        let mut all = Vec::new();
        for object in objects {
            let bytes = store.get(&object.location).await.unwrap().bytes().await.unwrap();
            let name = object.location.to_string();
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if name.ends_with(".parquet") {
                for batch in read_parquet_bytes(bytes.clone()) {
                    for column in batch.columns() {
                        text.push_str(&cells_text(column));
                    }
                }
            }
            if name.ends_with(".zst") {
                text.push_str(&String::from_utf8_lossy(&zstd::decode_all(bytes.as_ref()).unwrap()));
            }
            all.push((name, text));
        }
        all
    };
    // A customer with engagements, found in the lake's own bytes.
    let before = texts().await;
    let engagement_file =
        before.iter().find(|(n, _)| n.contains("/engagement/date=") && n.ends_with(".parquet")).unwrap();
    let bytes = store
        .get(&object_store::path::Path::from(engagement_file.0.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let contact_at = column_index("saltedcx", "engagement", "contact_pid");
    let customer = batch_rows(&read_parquet_bytes(bytes))
        .into_iter()
        .find_map(|row| match &row[contact_at] {
            Cell::Text(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert!(before.iter().any(|(_, text)| text.contains(&customer)));
    let mut forget_env = s3.env();
    forget_env.push(("CXLAKE_LOG", "warn".into()));
    let out = run_cxlake(
        &["forget", "--dest", &dest, "--key", &format!("saltedcx.customer={customer}")],
        &forget_env,
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("saltedcx.engagement: removed"), "{}", out.stdout);
    let left: Vec<String> =
        texts().await.into_iter().filter(|(_, t)| t.contains(&customer)).map(|(n, _)| n).collect();
    assert_eq!(left, Vec::<String>::new(), "no object holds the person, older Delta files included");
}

/// Issue 22: an e-mail address that only appears inside a `json_text` column (a form's
/// submission) and inside `_extra` (a field no column declares) — in another letter case, with
/// spaces — is found and erased from the history and the raw archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_only_inside_json_text_and_extra_is_found_and_erased() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("messages.json");
    std::fs::write(
        &file,
        r#"[{"id": "m-1", "csid": 1, "form_submission": {"name": "Jo", "email": " Jo.Doe@Example.com"}},
            {"id": "m-2", "csid": 2, "custom": {"contact": ["x", "jo.doe@example.COM"]}},
            {"id": "m-3", "csid": 3, "form_submission": {"email": "someone@example.com"}}]"#,
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let out = run_cxlake(
        &["convert", "dixa.message", "--date", "2024-03-01", "--dest", lake_arg, file.to_str().unwrap()],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_cxlake(&["forget", "--dest", lake_arg, "--email", "jo.doe@example.com"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("dixa.message: removed 2 row(s)"), "{}", out.stdout);
    let rows = batch_rows(&read_source_partition(&lake, "dixa", "message", date("2024-03-01")));
    let ids: Vec<String> = rows.iter().map(|r| text(&r[0])).collect();
    assert_eq!(ids, ["m-3"]);
    for (file, text) in lake_texts(&lake) {
        assert!(!text.to_lowercase().contains("jo.doe@example.com"), "{file} still holds the address");
    }
}
