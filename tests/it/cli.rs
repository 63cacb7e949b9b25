//! The `cxlake` binary as a user runs it: flags, environment, exit codes and output.

use cxlake::sources::saltedcx::emulator::EmulatorConfig;

use crate::common::*;

fn sync_args<'a>(lake: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "saltedcx",
        "--dest",
        lake,
        "--poll-interval",
        "10ms",
        "--failed-export-cooldown",
        "10ms",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_without_from_is_a_usage_error_that_says_so() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let out = run_cxlake(&sync_args(lake.path().to_str().unwrap(), &[]), &api_env(&emulator)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("give --from"), "{}", out.stderr);
    assert_eq!(emulator.stats().exports_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_from_sync_continues_after_the_last_done_window_and_fills_gaps() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let report = lake.path().join("report.json");
    let report_path = report.to_str().unwrap();
    let env = api_env(&emulator);

    let out = run_cxlake(&sync_args(dest, &["--from", "2024-03-01", "--to", "2024-03-03"]), &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 window(s) committed"), "{}", out.stdout);

    let out = run_cxlake(&sync_args(dest, &["--to", "2024-03-05", "--report-json", report_path]), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dates = |path: &std::path::Path| -> Vec<String> {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        json["windows"].as_array().unwrap().iter().map(|w| w["date"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(dates(&report), ["2024-03-03", "2024-03-04"]);

    // A lost window in the middle is a gap: status shows it and the next run fills it.
    std::fs::remove_file(lake.path().join("_cxlake/state/saltedcx/date=2024-03-02.json")).unwrap();
    let status = run_cxlake(&["status", "--dest", dest], NO_ENV).await;
    assert!(status.stdout.contains("2024-03-02"), "{}", status.stdout);
    let out = run_cxlake(
        &sync_args(dest, &["--to", "2024-03-05", "--lookback-days", "1", "--report-json", report_path]),
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dates(&report), ["2024-03-02", "2024-03-04"], "the gap, and one look-back day");

    let out = run_cxlake(&sync_args(dest, &["--to", "2024-03-05"]), &env).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_exits_2_and_writes_no_data() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let mut env = api_env(&emulator);
    env[1].1 = "definitely-wrong".into();
    let out = run_cxlake(
        &sync_args(lake.path().to_str().unwrap(), &["--from", "2024-03-01", "--to", "2024-03-03"]),
        &env,
    )
    .await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("401") || out.stderr.contains("401"));
    assert!(data_files(lake.path()).is_empty());
    assert_eq!(emulator.stats().exports_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_window_makes_the_run_partial_with_exit_1() {
    let config = EmulatorConfig { fail_dates: [date("2024-03-02")].into(), ..emulator_config() };
    let emulator = emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let out = run_cxlake(
        &sync_args(lake.path().to_str().unwrap(), &["--from", "2024-03-01", "--to", "2024-03-04"]),
        &api_env(&emulator),
    )
    .await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("FAILED") && out.stdout.contains("2 window(s) committed, 1 not"),
        "{}",
        out.stdout
    );
    let status = run_cxlake(&["status", "--dest", lake.path().to_str().unwrap()], NO_ENV).await;
    assert!(status.stdout.contains("2024-03-02"), "gap shown: {}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_caught_before_anything_is_attempted() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let env = api_env(&emulator);
    for (extra, expected) in [
        (vec!["--from", "2024-03-01", "--datasets", "turn,calls"], "unknown dataset `calls`"),
        (vec!["--from", "2024-03-01", "--datasets", ""], "--datasets is empty"),
        (vec!["--from", "yesterday-ish"], "not a date or time"),
        (vec!["--from", "2024-03-05", "--to", "2024-03-01"], "not before"),
        (vec!["--from", "2999-01-01", "--to", "2999-01-02"], "has not ended yet"),
        (vec!["--from", "2024-03-01", "--max-rejects", "lots"], "--max-rejects"),
        (vec!["--from", "2024-03-01", "--api-url", "http://api.example.com"], "refusing plain http://"),
    ] {
        let out = run_cxlake(&sync_args(dest, &extra), &env).await;
        assert_eq!(out.code, 2, "{extra:?}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{extra:?}: {}", out.stderr);
    }
    let no_key = run_cxlake(&sync_args(dest, &["--from", "2024-03-01"]), &env[..1]).await;
    assert_eq!(no_key.code, 2);
    assert!(no_key.stderr.contains("SALTEDCX_API_KEY"), "{}", no_key.stderr);
    assert_eq!(emulator.stats().exports_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_export_never_replaces_a_full_window() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let env = api_env(&emulator);
    let out = run_cxlake(&sync_args(dest, &["--from", "2024-03-01", "--to", "2024-03-02"]), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let customer =
        cxlake::sources::saltedcx::synth::day_plan(&emulator.config().synth, date("2024-03-01"), None)[0]
            .customer;
    let contact = cxlake::sources::saltedcx::synth::customer_email(customer);
    let out = run_cxlake(
        &sync_args(dest, &["--from", "2024-03-01", "--to", "2024-03-02", "--contact", &contact]),
        &env,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("separate --dest"), "{}", out.stderr);

    // Into its own destination it works, holds only that customer, and never records the contact.
    let own = tempfile::tempdir().unwrap();
    let own_dest = own.path().to_str().unwrap();
    let out = run_cxlake(
        &sync_args(own_dest, &["--from", "2024-03-01", "--to", "2024-03-02", "--contact", &contact]),
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let customers = batch_rows(&read_partition(own.path(), "customer", date("2024-03-01")));
    assert_eq!(customers.len(), 1);
    for file in files_under(own.path()) {
        let bytes = std::fs::read(own.path().join(&file)).unwrap();
        assert!(!bytes.windows(contact.len()).any(|w| w == contact.as_bytes()), "{file} holds the contact");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_commands_describe_every_column() {
    let list = run_cxlake(&["schema", "list"], NO_ENV).await;
    assert_eq!(list.code, 0);
    for dataset in DATASETS {
        assert!(list.stdout.contains(&format!("saltedcx.{dataset}")), "{}", list.stdout);
    }
    let show = run_cxlake(&["schema", "show", "saltedcx.engagement"], NO_ENV).await;
    assert_eq!(show.code, 0);
    for needle in
        ["attribute_04", "engagement_fact_03", "Timestamp(Microsecond, \"UTC\")", "Float64", "understanding"]
    {
        assert!(show.stdout.contains(needle), "{needle}: {}", show.stdout);
    }
    let turn = run_cxlake(&["schema", "show", "saltedcx.turn"], NO_ENV).await;
    let content = turn.stdout.lines().find(|l| l.starts_with("content ")).unwrap_or_default();
    assert!(content.contains(" text "), "free text is marked as such: {content}");
    let unknown = run_cxlake(&["schema", "show", "saltedcx.calls"], NO_ENV).await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("saltedcx.turn"), "lists the known datasets: {}", unknown.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_exports_without_their_urls() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let env = api_env(&emulator);
    run_cxlake(
        &sync_args(lake.path().to_str().unwrap(), &["--from", "2024-03-01", "--to", "2024-03-03"]),
        &env,
    )
    .await;
    let out = run_cxlake(&["history", "saltedcx"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("COMPLETED") && out.stdout.contains("2 export(s)"), "{}", out.stdout);
    assert!(!out.stdout.contains("X-Amz-Signature") && !out.stdout.contains("http"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_can_come_from_a_file_with_a_warning_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let key_file = lake.path().join("saltedcx.key");
    std::fs::write(&key_file, format!("{}\n", emulator.config().api_key)).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dest = lake.path().join("lake");
    let args = sync_args(dest.to_str().unwrap(), &["--from", "2024-03-01", "--to", "2024-03-02"]);
    let mut args: Vec<&str> = args;
    args.extend(["--api-key-file", key_file.to_str().unwrap()]);
    let env = vec![("SALTEDCX_API_URL", emulator.base_url().to_string())];
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("chmod 600"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_missing_directory_is_an_error_and_creates_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("typo");
    let out = run_cxlake(&["status", "--dest", missing.to_str().unwrap()], NO_ENV).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!missing.exists());
}

/// Issue 22: a destination the run cannot write to stops it before anything is attempted (exit
/// 2), with the cause said once and what to do — as `cxlake check` says it. (Root may write
/// anywhere, so the lake's bookkeeping directory is made unusable by a file in its way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_destination_is_said_once_with_what_to_do() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    std::fs::create_dir(lake.path().join("_cxlake")).unwrap();
    std::fs::write(lake.path().join("_cxlake/declarations"), b"in the way").unwrap();
    let out = run_cxlake(
        &sync_args(lake.path().to_str().unwrap(), &["--from", "2024-03-01", "--to", "2024-03-02"]),
        &api_env(&emulator),
    )
    .await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.matches("Not a directory").count(), 1, "once: {}", out.stderr);
    assert!(out.stderr.contains("cxlake check --dest"), "{}", out.stderr);
    assert_eq!(emulator.stats().exports_created, 0, "nothing attempted");
}

/// Issue 22: Ctrl-C during a sync: no new window is started, the one in flight commits, the
/// summary says what committed and how to resume, the run is recorded as interrupted (exit 130),
/// and no staging is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_taking_windows_prints_the_summary_and_records_an_interrupted_run() {
    let config = EmulatorConfig { processing_polls: 3, ..emulator_config() };
    let emulator = emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap().to_string();
    let extra =
        ["--from", "2024-03-01", "--to", "2024-03-08", "--parallel-windows", "1", "--poll-interval", "200ms"];
    let args: Vec<String> = sync_args(&lake_arg, &extra).iter().map(|a| a.to_string()).collect();
    let env = api_env(&emulator);
    let child = cxlake_command()
        .args(&args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = lake.path().join("_cxlake/state/saltedcx/date=2024-03-01.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&first).is_ok_and(|t| t.contains("\"done\"")) {
        assert!(std::time::Instant::now() < deadline, "the first window never committed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // SAFETY: a plain kill(2) of our own child with SIGINT.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("interrupted: the windows in flight finished"), "{stdout}");
    assert!(stdout.contains("--skip-done"), "{stdout}");
    let done = std::fs::read_dir(lake.path().join("_cxlake/state/saltedcx")).unwrap().count();
    assert!((1..7).contains(&done), "{done} windows started");
    let staging = lake.path().join("_cxlake/staging");
    assert!(files_under(&staging).is_empty(), "staging left: {:?}", files_under(&staging));
    let status = run_cxlake(&["status", "--dest", &lake_arg], NO_ENV).await;
    assert!(status.stdout.contains("INTERRUPTED"), "{}", status.stdout);
}

/// `cxlake … | head`: a reader that goes away ends the output, not the command — no panic, no
/// error, the command's own exit code. (SIGPIPE stays ignored: with its default action a write
/// to a closed S3 connection killed a sync, which the storage-fault tests found.)
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    for args in [
        vec!["schema", "docs", "--format", "json"],
        vec!["synth", "saltedcx.turn", "--date", "2024-03-01", "--per-day", "20000"],
    ] {
        let mut child = cxlake_command()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?} printed something");
        // The reader is dropped here: the rest of the output meets a closed pipe.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{args:?}: {stderr}");
    }
}
