//! `cxlake sync sparkcentral` against a real SFTP server (OpenSSH's sshd on 127.0.0.1, started by
//! `scripts/with-sshd.sh`): every value of three local days of every export type, a replaced
//! file, DuckDB reading the declared types back, host keys unknown or changed refused before
//! anything is sent, a wrong password (exit 2, never printed), key login, and a file still being
//! written (by a writer whose clock lies) left for the next run. The conformance suite adds
//! kill -9, faults and the password canary over the same server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cxlake::schema::{ColumnType, SchemaRegistry};
use cxlake::sources::sparkcentral::synth::{self, SparkcentralSynthConfig, TYPES};

use crate::common::*;
use crate::sparkcentral::{assert_landed_as_expected, expected_named, landed};

const FIRST: &str = "2024-10-26";

fn zone() -> chrono_tz::Tz {
    "Europe/Brussels".parse().unwrap()
}

async fn sync(env: &[(String, String)], lake: &std::path::Path, days: u64, extra: &[&str]) -> Output {
    let to = (date(FIRST) + chrono::Days::new(days)).to_string();
    let mut args =
        vec!["sync", "sparkcentral", "--dest", lake.to_str().unwrap(), "--from", FIRST, "--to", &to];
    args.extend(extra);
    run_cxlake(&args, env).await
}

/// A drop tree of `days` local days on the server, and the environment that reads it.
fn tree_on_server(server: &SftpServer, days: u32) -> (tempfile::TempDir, Vec<(String, String)>) {
    let (dir, url) = server.tree();
    synth::write_drop_tree(SparkcentralSynthConfig::default(), dir.path(), date(FIRST), days, zone())
        .unwrap();
    (dir, server.env(&url))
}

fn duckdb_type(column: &ColumnType) -> String {
    match column {
        ColumnType::List(item) => format!("{}[]", duckdb_type(&item.column_type)),
        scalar => crate::readers::reader_type("duckdb", Some(scalar)).to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_of_every_type_land_exactly_over_sftp_and_duckdb_reads_the_declared_types() {
    let server = SftpServer::from_env();
    let (tree, env) = tree_on_server(&server, 3);
    let lake = tempfile::tempdir().unwrap();
    let out = sync(&env, lake.path(), 3, &["--recheck-after", "1s"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut rows = 0;
    let mut expected_counts = std::collections::BTreeMap::new();
    for export in TYPES {
        for offset in 0..3 {
            let day = date(FIRST) + chrono::Days::new(offset);
            let want = expected_named(export.dataset, day, date(FIRST), zone());
            let got = landed(lake.path(), export.dataset, day);
            assert_landed_as_expected(&got, &want, &format!("{} {day}", export.dataset));
            rows += want.len();
            *expected_counts.entry(export.dataset).or_insert(0u64) += want.len() as u64;
        }
    }
    assert!(rows > 300, "{rows} rows compared");
    // The raw archive holds every downloaded file byte for byte.
    let mut archived = 0;
    for (key, files) in archived_files(lake.path(), "sparkcentral") {
        let folder = TYPES.iter().find(|t| key.starts_with(&format!("{}/", t.dataset))).unwrap().folder;
        for (name, bytes) in files {
            assert!(bytes == std::fs::read(tree.path().join(folder).join(&name)).unwrap(), "{name}");
            archived += 1;
        }
    }
    assert!(archived > 90, "{archived} archived files compared");

    // DuckDB reads every dataset back with the declared types and the rows that landed.
    let datasets: Vec<&str> = TYPES.iter().map(|t| t.dataset).collect();
    let mut args = vec![lake.path().to_str().unwrap(), "sparkcentral"];
    args.extend(&datasets);
    let seen = python_json("duckdb_read.py", &args).await;
    let registry = SchemaRegistry::embedded().unwrap();
    for dataset in &datasets {
        let schema = registry.dataset("sparkcentral", dataset).unwrap();
        let got = &seen[dataset];
        assert_eq!(got["rows"].as_u64(), Some(expected_counts[dataset]), "{dataset}");
        let types = got["types"].as_object().unwrap();
        for column in &schema.columns {
            assert_eq!(
                types[&column.name].as_str(),
                Some(duckdb_type(&column.column_type).as_str()),
                "{dataset}.{}",
                column.name
            );
        }
        assert_eq!(types["date"].as_str(), Some("DATE"), "{dataset}: the partition column is typed");
    }

    // Unchanged on the server: nothing is downloaded again.
    let again = sync(&env, lake.path(), 3, &["--recheck-after", "0s"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);

    // A corrected file for the first day's tags (the same export: its uuid series, another
    // suffix; the same span) replaces that day's rows.
    let day = date(FIRST);
    let config = SparkcentralSynthConfig { seed: 7, ..SparkcentralSynthConfig::default() };
    let corrected = synth::day_rows(config, "tag", day, zone(), 0);
    let uuid = format!("{}-corrected", synth::export_uuid(SparkcentralSynthConfig::default(), "tag"));
    let name = synth::file_name(SparkcentralSynthConfig::default(), "tag", day, &uuid);
    let path = tree.path().join("tag").join(name);
    std::fs::write(&path, synth::render("tag", &corrected, zone())).unwrap();
    set_modified(&path, SystemTime::now() - Duration::from_secs(120));
    let replaced = sync(&env, lake.path(), 3, &["--recheck-after", "0s"]).await;
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    let tag_names: Vec<Cell> = landed(lake.path(), "tag", day)
        .iter()
        .map(|row| row.iter().find(|(c, _)| c == "tag_name").unwrap().1.clone())
        .collect();
    let want: Vec<Cell> = corrected
        .iter()
        .map(|row| match &row[1] {
            synth::Value::Text(t) => Cell::Text(t.clone()),
            _ => Cell::Null,
        })
        .collect();
    assert_eq!(tag_names, want, "the corrected file's rows replaced the day's");
    let second = date(FIRST) + chrono::Days::new(1);
    assert_landed_as_expected(
        &landed(lake.path(), "tag", second),
        &expected_named("tag", second, date(FIRST), zone()),
        "the other days stay",
    );
}

fn set_modified(path: &std::path::Path, when: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

/// `ssh-keygen -lf`'s SHA256 fingerprint of the keys in a file: an independent answer.
fn fingerprint(file: &str) -> String {
    let out =
        std::process::Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f", file]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_changed_host_keys_are_refused_with_the_fingerprint() {
    let server = SftpServer::from_env();
    let (_tree, env) = tree_on_server(&server, 1);
    let real = fingerprint(&server.known_hosts);
    let keys = tempfile::tempdir().unwrap();
    let other_key = keys.path().join("other");
    let generated = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", other_key.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(generated.success());
    let other_public = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let other_public: Vec<&str> = other_public.split_whitespace().take(2).collect();

    let with_known_hosts = |content: String| {
        let path = keys.path().join(format!("known_hosts-{}", content.len()));
        std::fs::write(&path, content).unwrap();
        let mut env = env.clone();
        env.push(("SPARKCENTRAL_SFTP_KNOWN_HOSTS".into(), path.display().to_string()));
        env
    };

    // Unknown: known_hosts knows another server only.
    let lake = tempfile::tempdir().unwrap();
    let unknown = with_known_hosts(format!("[127.0.0.1]:1 {}\n", other_public.join(" ")));
    let out = sync(&unknown, lake.path(), 1, &[]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not in") && out.stderr.contains(&real), "{}", out.stderr);
    assert!(!lake.path().join("sparkcentral").exists(), "nothing landed");

    // Changed: known_hosts has another key of the same type for this very server.
    let port = &server.port;
    let changed = with_known_hosts(format!("# ours\n[127.0.0.1]:{port} {}\n", other_public.join(" ")));
    let out = sync(&changed, lake.path(), 1, &[]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("CHANGED") && out.stderr.contains(&real), "{}", out.stderr);
    assert!(out.stderr.contains("line 2"), "names the known_hosts line: {}", out.stderr);

    // No known_hosts file at all.
    let mut missing = env.clone();
    missing.push(("SPARKCENTRAL_SFTP_KNOWN_HOSTS".into(), keys.path().join("absent").display().to_string()));
    let out = sync(&missing, lake.path(), 1, &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist") && out.stderr.contains("ssh-keyscan"), "{}", out.stderr);
    assert!(!lake.path().join("sparkcentral").exists(), "nothing landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_exits_2_and_no_password_is_printed_while_a_key_logs_in() {
    let server = SftpServer::from_env();
    let (_tree, env) = tree_on_server(&server, 1);
    let lake = tempfile::tempdir().unwrap();
    let wrong = "wrong-0b7e4c1d9a-password";
    let mut bad = env.clone();
    bad.retain(|(name, _)| name != "SPARKCENTRAL_SFTP_PASSWORD");
    bad.push(("SPARKCENTRAL_SFTP_PASSWORD".into(), wrong.into()));
    let out = sync(&bad, lake.path(), 1, &[]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("refused the password"), "{}", out.stderr);
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(wrong) && !text.contains(&server.password), "a password printed: {text}");
    }

    // A tree that is not there.
    let mut missing = env.clone();
    missing.retain(|(name, _)| name != "SPARKCENTRAL_SOURCE");
    missing.push((
        "SPARKCENTRAL_SOURCE".into(),
        format!("sftp://{}@127.0.0.1:{}/no-such-tree/export", server.user, server.port),
    ));
    let out = sync(&missing, lake.path(), 1, &[]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("/no-such-tree/export does not exist"), "{}", out.stderr);

    // A key instead of the password.
    let mut keyed = env.clone();
    keyed.retain(|(name, _)| name != "SPARKCENTRAL_SFTP_PASSWORD");
    keyed.push(("SPARKCENTRAL_SFTP_IDENTITY".into(), server.identity.clone()));
    let out = sync(&keyed, lake.path(), 1, &["--recheck-after", "0s"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let day = date(FIRST);
    assert_landed_as_expected(
        &landed(lake.path(), "message", day),
        &expected_named("message", day, date(FIRST), zone()),
        "logged in with the key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_growing_is_left_for_the_next_run_whatever_its_clock_says() {
    let server = SftpServer::from_env();
    let (tree, env) = tree_on_server(&server, 1);
    let day = date(FIRST);
    let name = synth::file_name(
        SparkcentralSynthConfig::default(),
        "contact",
        day,
        &synth::export_uuid(SparkcentralSynthConfig::default(), "contact"),
    );
    let path = tree.path().join("contact").join(name);
    let full = std::fs::read(&path).expect("the generator's contact file");
    // The upload has reached a third; the writer's clock is an hour behind (so the file's time
    // looks settled), and it goes on appending a few bytes at a time.
    let written = full.len() / 3;
    std::fs::write(&path, &full[..written]).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    set_modified(&path, an_hour_ago);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path, full) = (stop.clone(), path.clone(), full.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut at = written;
            while !stop.load(Ordering::SeqCst) && at + 8 < full.len() {
                std::thread::sleep(Duration::from_millis(100));
                let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                file.write_all(&full[at..at + 8]).unwrap();
                at += 8;
                file.set_modified(an_hour_ago).unwrap();
            }
            at
        })
    };
    let lake = tempfile::tempdir().unwrap();
    let waiting = sync(&env, lake.path(), 1, &["--settle", "1s", "--recheck-after", "2s"]).await;
    stop.store(true, Ordering::SeqCst);
    let at = writer.join().unwrap();
    assert!(at + 8 < full.len(), "the file was still growing when the sync ended");
    assert_eq!(waiting.code, 0, "{}\n{}", waiting.stdout, waiting.stderr);
    assert!(waiting.stderr.contains("changed between two listings"), "{}", waiting.stderr);
    assert!(!lake.path().join("sparkcentral/contact").exists(), "no part of the day landed");

    // The upload completes: the next run takes the day, with every row.
    std::fs::write(&path, &full).unwrap();
    set_modified(&path, an_hour_ago);
    let done = sync(&env, lake.path(), 1, &["--settle", "1s", "--recheck-after", "1s"]).await;
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    assert_landed_as_expected(
        &landed(lake.path(), "contact", day),
        &expected_named("contact", day, date(FIRST), zone()),
        "the completed file",
    );
}
