//! The PII policy end to end: hashes equal an independent HMAC-SHA256 (Python's) of the
//! documented normal form, stable across runs and datasets and different with another key;
//! dropped and free-text columns leave no value in any file of the lake; a hash without a key
//! and a policy change without a replay are refused (exit 2), and a replay applies the new policy.

use cxlake::sources::sparkcentral::synth::{self, SparkcentralSynthConfig};

use crate::common::*;
use crate::sparkcentral::{expected_named, landed};

const FIRST: &str = "2024-03-04";

fn zone() -> chrono_tz::Tz {
    "Europe/Brussels".parse().unwrap()
}

fn tree() -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    synth::write_drop_tree(SparkcentralSynthConfig::default(), tree.path(), date(FIRST), 2, zone()).unwrap();
    tree
}

async fn sync(tree: &std::path::Path, lake: &std::path::Path, key: Option<&str>, extra: &[&str]) -> Output {
    sync_until(tree, lake, key, "2024-03-06", extra).await
}

async fn sync_until(
    tree: &std::path::Path,
    lake: &std::path::Path,
    key: Option<&str>,
    to: &str,
    extra: &[&str],
) -> Output {
    let (dest, source) = (lake.to_str().unwrap(), tree.to_str().unwrap());
    let mut args =
        vec!["sync", "sparkcentral", "--dest", dest, "--source", source, "--timezone", "Europe/Brussels"];
    args.extend(["--from", FIRST, "--to", to, "--settle", "0s", "--recheck-after", "0s"]);
    args.extend(extra);
    let env: Vec<(&str, &str)> = key.map(|k| vec![("CXLAKE_PII_KEY", k)]).unwrap_or_default();
    run_cxlake(&args, &env).await
}

fn column(rows: &[Vec<(String, Cell)>], name: &str) -> Vec<Cell> {
    rows.iter().map(|row| row.iter().find(|(c, _)| c == name).unwrap().1.clone()).collect()
}

/// Python's HMAC-SHA256 of the text `cells` normalised as `kind` (nulls stay null).
async fn python_hmac(key: &str, kind: &str, cells: &[Cell]) -> Vec<Cell> {
    let values: Vec<String> = cells
        .iter()
        .filter_map(|c| match c {
            Cell::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&values).unwrap()).unwrap();
    let hashed = python_json("pii_hmac.py", &[key, kind, file.path().to_str().unwrap()]).await;
    let mut hashed = hashed.as_array().unwrap().iter().map(|h| Cell::Text(h.as_str().unwrap().to_string()));
    cells.iter().map(|c| if *c == Cell::Null { Cell::Null } else { hashed.next().unwrap() }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_are_hmacs_of_the_normal_form_stable_and_keyed_and_free_text_is_dropped() {
    let tree = tree();
    let day = date(FIRST);
    let (one, two, other_key) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = sync(tree.path(), one.path(), None, &["--pii", "hash"]).await;
    assert_eq!(out.code, 2, "no key, no hashing: {}", out.stderr);
    assert!(out.stderr.contains("CXLAKE_PII_KEY"), "{}", out.stderr);

    for (lake, key) in [(&one, "k-one"), (&two, "k-one"), (&other_key, "k-two")] {
        let out = sync(tree.path(), lake.path(), Some(key), &["--pii", "hash"]).await;
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert!(!lake.path().join("_cxlake/raw").exists(), "no raw archive under hash unless asked");
    }
    let want = expected_named("user", day, date(FIRST), zone());
    let got = landed(one.path(), "user", day);
    let emails = column(&want, "user_email_address");
    assert!(emails.iter().filter(|c| **c != Cell::Null).count() > 5);
    assert_eq!(column(&got, "user_email_address"), python_hmac("k-one", "email", &emails).await);
    let names = column(&want, "user_name");
    assert_eq!(column(&got, "user_name"), python_hmac("k-one", "value", &names).await);
    assert_eq!(column(&got, "user_id"), column(&want, "user_id"), "other columns as fetched");
    // The same value in another dataset hashes the same (joins still work).
    let presence = landed(one.path(), "user_presence", day);
    let presence_emails =
        column(&expected_named("user_presence", day, date(FIRST), zone()), "user_email_address");
    assert_eq!(
        column(&presence, "user_email_address"),
        python_hmac("k-one", "email", &presence_emails).await
    );
    // Stable across runs; another key, other hashes.
    assert_eq!(landed(two.path(), "user", day), got);
    assert_ne!(
        column(&landed(other_key.path(), "user", day), "user_email_address"),
        column(&got, "user_email_address")
    );
    // Free text is never hashed: dropped.
    assert!(column(&landed(one.path(), "message", day), "content").iter().all(|c| *c == Cell::Null));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(one.path().join(format!("_cxlake/state/sparkcentral/date={FIRST}.json"))).unwrap(),
    )
    .unwrap();
    let policy = record["datasets"]["user"]["pii"].as_str().unwrap();
    assert!(policy.contains("user_email_address=hash") && policy.contains("key="), "{policy}");
    assert!(!policy.contains("k-one"), "the key is never recorded");
}

/// Every personal value the generator wrote (long enough to be unmistakable).
fn personal_values(tree: &std::path::Path) -> Vec<String> {
    let registry = cxlake::schema::SchemaRegistry::embedded().unwrap();
    let mut values = std::collections::BTreeSet::new();
    for export in synth::TYPES {
        let schema = registry.dataset("sparkcentral", export.dataset).unwrap();
        for offset in 0..2 {
            let day = date(FIRST) + chrono::Days::new(offset);
            for row in expected_named(export.dataset, day, date(FIRST), zone()) {
                for (column, cell) in row {
                    let personal = schema.columns.iter().any(|c| c.name == column && c.pii);
                    if let (true, Cell::Text(text)) = (personal, cell) {
                        if text.len() >= 8 {
                            values.insert(text);
                        }
                    }
                }
            }
        }
    }
    assert!(tree.exists());
    values.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_columns_leave_no_trace_and_a_policy_change_needs_a_replay() {
    let tree = tree();
    let lake = tempfile::tempdir().unwrap();
    let out = sync(tree.path(), lake.path(), None, &["--pii", "drop"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let values = personal_values(tree.path());
    assert!(values.len() > 50, "{} personal values", values.len());
    let scan = |lake: &std::path::Path| -> Vec<String> {
        let mut found = Vec::new();
        for file in files_under(lake) {
            let bytes = std::fs::read(lake.join(&file)).unwrap();
            // Decoded too: Parquet pages are compressed, so a byte scan alone proves little.
            let decoded = if file.ends_with(".parquet") {
                format!("{:?}", batch_rows(&read_parquet_file(&lake.join(&file))))
            } else {
                String::new()
            };
            for value in &values {
                let hit = bytes.windows(value.len()).any(|w| w == value.as_bytes())
                    || decoded.contains(&format!("{value:?}"));
                if hit {
                    found.push(format!("{value} in {file}"));
                }
            }
        }
        found
    };
    assert_eq!(scan(lake.path()), Vec::<String>::new(), "no personal value anywhere in the lake");

    // The same lake with another policy: refused, with the way out.
    let change = sync_until(tree.path(), lake.path(), Some("k"), "2024-03-05", &["--pii", "hash"]).await;
    assert_eq!(change.code, 2, "{}\n{}", change.stdout, change.stderr);
    assert!(change.stderr.contains("cxlake replay sparkcentral"), "{}", change.stderr);

    // A lake synced as fetched, with the raw archive: a replay moves it to the new policy.
    let kept = tempfile::tempdir().unwrap();
    assert_eq!(sync(tree.path(), kept.path(), None, &[]).await.code, 0);
    assert!(!scan(kept.path()).is_empty(), "the scan finds personal values where they are kept");
    let status = run_cxlake(&["status", "--dest", kept.path().to_str().unwrap()], NO_ENV).await;
    assert!(status.stdout.contains("raw archive:"), "{}", status.stdout);
    let replay = run_cxlake(
        &["replay", "sparkcentral", "--dest", kept.path().to_str().unwrap(), "--pii", "drop"],
        NO_ENV,
    )
    .await;
    assert_eq!(replay.code, 0, "{}\n{}", replay.stdout, replay.stderr);
    let day = date(FIRST);
    assert!(column(&landed(kept.path(), "user", day), "user_email_address").iter().all(|c| *c == Cell::Null));
    let status = run_cxlake(&["status", "--dest", kept.path().to_str().unwrap()], NO_ENV).await;
    assert!(status.stdout.contains("hold personal data"), "{}", status.stdout);
    // Now the lake is `drop` throughout: a sync under drop is accepted.
    let again = sync_until(tree.path(), kept.path(), None, "2024-03-05", &["--pii", "drop"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
}
