//! Running it in production: the config file (parse, override order, refused inline secrets,
//! `sync --all` with a failing source), progress bars in a real pseudo-terminal and none
//! without one, JSON log lines, the Prometheus metrics file, and `cxlake check`.

use std::collections::BTreeMap;

use crate::common::*;
use crate::dixa::{dixa_emulator, dixa_emulator_config};

fn write_config(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("cxlake.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A config for the Salted CX emulator with `lake` as destination; the key by reference.
fn saltedcx_config(emulator: &cxlake::sources::saltedcx::emulator::Emulator, lake: &str) -> String {
    format!(
        "[destination]\nurl = \"{lake}\"\n\n[output]\nmax_rejects = \"1%\"\n\n[sources.saltedcx]\napi_url = \"{}\"\nallow_http = true\napi_key = \"${{CFG_SALTEDCX_KEY}}\"\npoll_interval = \"10ms\"\n",
        emulator.base_url()
    )
}

/// `key = "value"  # origin` lines of `config show`, per table.
fn shown(stdout: &str) -> BTreeMap<String, (String, String)> {
    let mut table = String::new();
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if let Some((setting, origin)) = line.split_once(" # ") {
            if let Some((key, value)) = setting.split_once(" = ") {
                let name =
                    if table.is_empty() { key.trim().to_string() } else { format!("{table}.{}", key.trim()) };
                out.insert(name, (value.trim().trim_matches('"').to_string(), origin.trim().to_string()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_is_overridden_by_the_environment_and_the_command_line() {
    let emulator = emulator(emulator_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").display().to_string();
    let config = write_config(dir.path(), &saltedcx_config(&emulator, &lake));
    let key = emulator.config().api_key.clone();
    let env = [("CFG_SALTEDCX_KEY", key.clone())];

    let out = run_cxlake(&["--config", &config, "config", "show"], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let settings = shown(&out.stdout);
    assert_eq!(settings["sources.saltedcx.dest"], (lake.clone(), "file".into()));
    assert_eq!(settings["sources.saltedcx.max_rejects"], ("1%".into(), "file".into()));
    assert_eq!(settings["sources.saltedcx.format"], ("parquet".into(), "default".into()));
    assert_eq!(settings["sources.saltedcx.api_key"].0, "<redacted>");
    assert!(settings["sources.saltedcx.api_key"].1.contains("${CFG_SALTEDCX_KEY}"));
    assert!(!out.stdout.contains(&key), "the key itself never shows:\n{}", out.stdout);

    // The environment beats the file, the command line beats both.
    let mut with_env = env.to_vec();
    with_env.push(("CXLAKE_DEST", "/tmp/from-env".into()));
    let out = run_cxlake(&["--config", &config, "config", "show"], &with_env).await;
    assert_eq!(shown(&out.stdout)["sources.saltedcx.dest"], ("/tmp/from-env".into(), "environment".into()));
    let out = run_cxlake(&["--config", &config, "--max-rejects", "5", "config", "show"], &env).await;
    assert_eq!(out.code, 2, "--max-rejects is not a flag of `config show`: {}", out.stderr);

    // A sync with nothing but the file and a range lands where the file says.
    let out = run_cxlake(
        &["--config", &config, "sync", "saltedcx", "--from", "2024-03-01", "--to", "2024-03-02"],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!data_files(std::path::Path::new(&lake)).is_empty());
    // A flag typed after the subcommand wins over the file's value.
    let other = dir.path().join("other").display().to_string();
    let out = run_cxlake(
        &[
            "--config",
            &config,
            "sync",
            "saltedcx",
            "--dest",
            &other,
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-02",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!data_files(std::path::Path::new(&other)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_secret_or_an_unknown_key_is_refused_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[destination]\nurl = \"/tmp/x\"\n[sources.saltedcx]\napi_key = \"sk-live-0123456789\"\n",
    );
    let out = run_cxlake(&["--config", &config, "sync", "saltedcx", "--from", "2024-03-01"], NO_ENV).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("api_key is written inline") && out.stderr.contains("${SALTEDCX_API_KEY}"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("sk-live"), "{}", out.stderr);

    let config = write_config(dir.path(), "[sources.dixa]\napi_token = \"abc\"\n");
    let out = run_cxlake(&["--config", &config, "sync", "dixa", "--dest", "/tmp/x"], NO_ENV).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("api_token is written inline") && !out.stderr.contains("abc\""),
        "{}",
        out.stderr
    );

    let config = write_config(dir.path(), "[sources.saltedcx]\nlookback_dayz = 3\n");
    let out = run_cxlake(&["--config", &config, "sync", "saltedcx", "--dest", "/tmp/x"], NO_ENV).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("`lookback_dayz`") && out.stderr.contains("lookback_days"), "{}", out.stderr);

    let config = write_config(dir.path(), "[destination\n");
    let out = run_cxlake(&["--config", &config, "status"], NO_ENV).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cxlake.toml"), "{}", out.stderr);
}

/// A small parser of the Prometheus text format: every sample line is `name{labels} value`,
/// every family announced by `# HELP` and `# TYPE` before its samples.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        assert!(typed.contains(name), "{name} sampled before its # TYPE");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')), "{line}");
            for pair in labels.trim_matches(|c| c == '{' || c == '}').split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap();
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            }
        }
        samples.insert(series.to_string(), value.parse::<f64>().unwrap_or_else(|_| panic!("{line}")));
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_all_goes_on_past_a_failing_source_and_writes_the_metrics_file() {
    let saltedcx = emulator(emulator_config()).await;
    let dixa = dixa_emulator(dixa_emulator_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").display().to_string();
    let text = format!(
        "{}\n[sources.dixa]\napi_url = \"{}\"\nallow_http = true\napi_token = \"${{CFG_DIXA_TOKEN}}\"\n",
        saltedcx_config(&saltedcx, &lake),
        dixa.base_url()
    );
    let config = write_config(dir.path(), &text);
    let metrics = dir.path().join("cxlake.prom");
    let env =
        [("CFG_SALTEDCX_KEY", saltedcx.config().api_key.clone()), ("CFG_DIXA_TOKEN", "not-the-token".into())];
    let metrics_arg = metrics.display().to_string();
    let out = run_cxlake(
        &[
            "--config",
            &config,
            "--metrics-file",
            &metrics_arg,
            "sync",
            "--all",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-03",
        ],
        &env,
    )
    .await;
    // Dixa (the first, alphabetically) is refused; Salted CX still runs; the exit code is the worst.
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 window(s) committed"), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l.starts_with("dixa") && l.contains(" 2 ")), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l.starts_with("saltedcx") && l.contains(" 0 ")), "{}", out.stdout);

    let text = std::fs::read_to_string(&metrics).unwrap();
    let samples = parse_metrics(&text);
    assert_eq!(samples["cxlake_run_success{source=\"saltedcx\"}"], 1.0, "{text}");
    assert_eq!(samples["cxlake_run_success{source=\"dixa\"}"], 0.0, "{text}");
    assert_eq!(samples["cxlake_windows{source=\"saltedcx\",outcome=\"committed\"}"], 2.0);
    let expected = expected_counts(&saltedcx.config().synth, &days("2024-03-01", 2));
    for (dataset, rows) in &expected {
        let series = format!("cxlake_rows_written{{source=\"saltedcx\",dataset=\"{dataset}\"}}");
        assert_eq!(samples[&series], *rows as f64, "{series}");
        let fresh =
            format!("cxlake_last_success_timestamp_seconds{{source=\"saltedcx\",dataset=\"{dataset}\"}}");
        let age = chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - samples[&fresh];
        assert!((-1.0..120.0).contains(&age), "{fresh} {age}");
    }
    // Written atomically: no temporary file left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp")), "{left:?}");

    // Freshness: the windows of 2024 are far older than 36 hours.
    let out = run_cxlake(&["--config", &config, "status", "--max-age", "36h"], &env).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("STALE saltedcx.turn") && out.stderr.contains("STALE dixa"),
        "{}",
        out.stderr
    );
    let out = run_cxlake(&["status", "--dest", &lake, "--max-age", "100000d"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(" age "), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_run_source_window_and_dataset() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let mut env = api_env(&emulator);
    env.push(("CXLAKE_LOG", "cxlake=debug".into()));
    let dest = lake.path().to_str().unwrap();
    let out = run_cxlake(
        &[
            "--log-format",
            "json",
            "sync",
            "saltedcx",
            "--allow-http",
            "--dest",
            dest,
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-02",
            "--poll-interval",
            "10ms",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{}", out.stderr);
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    let committed = lines.iter().find(|l| l["message"] == "Window committed").expect("a committed window");
    assert_eq!(committed["source"], "saltedcx");
    assert_eq!(committed["window"], "2024-03-01");
    assert!(committed["run_id"].as_str().is_some_and(|r| out.stdout.contains(r)), "{committed}");
    let staged = lines.iter().find(|l| l["message"] == "Conversion started").expect("a conversion");
    assert!(
        staged["dataset"].is_string() && staged["window"] == "2024-03-01" && staged["run_id"].is_string(),
        "{staged}"
    );
    assert!(!out.stderr.contains('\u{1b}'), "no escape codes in JSON logs");
}

/// Runs a shell `command` on a real pseudo-terminal (util-linux `script` runs it on one and copies
/// what it shows): its exit code and what it showed, without carriage returns.
async fn on_a_terminal(command: String, env: Vec<(String, String)>) -> (Option<i32>, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .envs(env)
            .env_remove("CXLAKE_DEST")
            .env_remove("NO_COLOR")
            .output()
            .expect("script(1) from util-linux runs")
    })
    .await
    .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bars_draw_in_a_terminal_and_plain_lines_come_without_one() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap().to_string();
    let command = format!(
        "stty cols 160 rows 40; {} sync saltedcx --allow-http --dest {dest} --from 2024-03-01 --to 2024-03-04 --poll-interval 50ms",
        cxlake_bin()
    );
    let env: Vec<(String, String)> =
        api_env(&emulator).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let (code, shown) = on_a_terminal(command, env).await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("\u{1b}[") && shown.contains("windows"), "bars drawn: {shown}");
    assert!(shown.contains("3/3 windows"), "the bar reached the end: {shown}");
    // The final table is intact: each of its lines whole, on a line of its own.
    for day in ["2024-03-01", "2024-03-02", "2024-03-03"] {
        assert!(
            shown.lines().any(|l| l.starts_with(day) && l.contains("committed") && l.contains("export ")),
            "{day} row torn: {shown}"
        );
    }
    assert!(shown.lines().any(|l| l == "3 window(s) committed, 0 not"), "{shown}");

    // Without a terminal: no bars, no escape codes, just lines.
    let lake = tempfile::tempdir().unwrap();
    let out = run_cxlake(
        &[
            "sync",
            "saltedcx",
            "--allow-http",
            "--dest",
            lake.path().to_str().unwrap(),
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-02",
            "--poll-interval",
            "10ms",
        ],
        &api_env(&emulator),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'), "{}", out.stderr);
    assert!(!out.stderr.contains("windows  "), "no bar: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_a_good_setup_and_names_what_is_broken_in_bad_ones() {
    let s3 = s3();
    let emulator = emulator(emulator_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = format!("s3://{}/check/{}", s3.bucket, cxlake::cli::new_run_id());
    let config = write_config(dir.path(), &saltedcx_config(&emulator, &lake));
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("CFG_SALTEDCX_KEY", emulator.config().api_key.clone()));
    let out = run_cxlake(&["--config", &config, "check"], &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for check in [
        "destination write/read",
        "conditional put",
        "clock skew",
        "destination delete",
        "leases",
        "source saltedcx",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(check) && l.contains('✓')),
            "{check}: {}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("all 8 checks passed"), "{}", out.stdout);

    // A bad key.
    let mut bad_key = env.clone();
    bad_key.retain(|(k, _)| *k != "CFG_SALTEDCX_KEY");
    bad_key.push(("CFG_SALTEDCX_KEY", "wrong".into()));
    let out = run_cxlake(&["--config", &config, "check"], &bad_key).await;
    assert_eq!(out.code, 2);
    let line = out.stdout.lines().find(|l| l.starts_with("source saltedcx")).unwrap();
    assert!(line.contains('✗') && line.contains("rejected") && line.contains("SALTEDCX_API_KEY"), "{line}");

    // A destination that cannot be written: its parent is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let unwritable = file.join("lake").display().to_string();
    let out = run_cxlake(&["--config", &config, "check", "--dest", &unwritable], &env).await;
    assert_eq!(out.code, 2);
    assert!(out.stdout.lines().any(|l| l.starts_with("destination") && l.contains('✗')), "{}", out.stdout);
    assert!(
        out.stdout.contains("source saltedcx") && out.stdout.contains("1 of"),
        "the other checks still run: {}",
        out.stdout
    );

    // An SFTP server whose host key is not in known_hosts.
    let server = SftpServer::from_env();
    let (_tree, url) = server.tree();
    let unknown = dir.path().join("known_hosts");
    std::fs::write(&unknown, "").unwrap();
    let sftp_config = write_config(
        dir.path(),
        &format!(
            "[destination]\nurl = \"{}\"\n[sources.sparkcentral]\nsource = \"{url}\"\nknown_hosts = \"{}\"\npassword = \"${{CFG_SFTP_PASSWORD}}\"\ntimezone = \"Europe/Brussels\"\n",
            dir.path().join("sftp-lake").display(),
            unknown.display()
        ),
    );
    let sftp_env = [("CFG_SFTP_PASSWORD", server.password.clone())];
    let out = run_cxlake(&["--config", &sftp_config, "check"], &sftp_env).await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    let line = out.stdout.lines().find(|l| l.starts_with("source sparkcentral")).unwrap();
    assert!(line.contains('✗') && line.contains("SHA256:"), "{line}");
    // With the right known_hosts it logs in and lists.
    let text = std::fs::read_to_string(&sftp_config).unwrap();
    std::fs::write(&sftp_config, text.replace(&unknown.display().to_string(), &server.known_hosts)).unwrap();
    let out = run_cxlake(&["--config", &sftp_config, "check"], &sftp_env).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_config_parses_and_shows_every_source() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("### One config file").nth(1).expect("the README's config section");
    let example = section.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), example);
    let env = [("SALTEDCX_API_KEY", "k"), ("KHOROS_PASSWORD", "p"), ("LOOP_API_TOKEN", "t")];
    let out = run_cxlake(&["--config", &config, "config", "show"], &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for source in ["saltedcx", "dixa", "khoros", "loop", "sparkcentral"] {
        assert!(out.stdout.contains(&format!("[sources.{source}]")), "{source}: {}", out.stdout);
    }
    let settings = shown(&out.stdout);
    assert_eq!(settings["sources.loop.loop_format"].1, "file");
    assert_eq!(settings["sources.khoros.password"].0, "<redacted>");
    assert_eq!(settings["log_format"], ("json".into(), "file".into()));
}

/// Runs the binary from `dir`, as cron or a container would (another working directory).
async fn run_cxlake_in(dir: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let (dir, args) = (dir.to_path_buf(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    tokio::task::spawn_blocking(move || {
        let output = cxlake_command()
            .current_dir(dir)
            .args(&args)
            .env_remove("CXLAKE_DEST")
            .envs(env)
            .output()
            .expect("cxlake runs");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// Issue 22: relative paths in the config file are the file's neighbours wherever the command
/// runs from; a configured lookback does not stop an explicit `--from`; a bad value in the file
/// is named by its section and key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_with_relative_paths_and_a_lookback_runs_from_another_directory() {
    let emulator = emulator(emulator_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let (etc, elsewhere) = (dir.path().join("etc"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let config =
        format!("metrics_file = \"cxlake.prom\"\n{}lookback_days = 3\n", saltedcx_config(&emulator, "lake"));
    let config = write_config(&etc, &config);
    let env = [("CFG_SALTEDCX_KEY", emulator.config().api_key.clone())];
    let args = ["--config", &config, "sync", "saltedcx", "--from", "2024-03-01", "--to", "2024-03-03"];
    let out = run_cxlake_in(&elsewhere, &args, &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        etc.join("lake/_cxlake/state/saltedcx/date=2024-03-02.json").exists(),
        "the lake beside the file"
    );
    assert!(etc.join("cxlake.prom").exists(), "the metrics file beside the file");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "nothing in the working directory");
    let status = run_cxlake_in(&elsewhere, &["--config", &config, "status"], &[]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("saltedcx"), "{}", status.stdout);

    let bad = write_config(&elsewhere, "[output]\non_type_mismatch = \"ignore\"\n");
    let out = run_cxlake_in(&elsewhere, &["--config", &bad, "sync", "saltedcx", "--dest", "x"], &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`on_type_mismatch` in [output]"), "{}", out.stderr);
}

/// Issue 26: `status --calendar` draws one cell per day from the lake's first window to its
/// last: done, missing (a hole no run tried) and failed (a run stopped by a rejected key) — plain
/// characters without a terminal, colour on one (a real pseudo-terminal, through `script`), JSON
/// with `--format json`, the last N days with `--days`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coverage_calendar_shows_done_missing_and_failed_days() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap().to_string();
    let sync = |from: &'static str, to: &'static str| {
        vec!["sync", "saltedcx", "--dest", &dest, "--from", from, "--to", to, "--poll-interval", "10ms"]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let env = api_env(&emulator);
    assert_eq!(run_cxlake(&sync("2024-02-27", "2024-03-01"), &env).await.code, 0);
    assert_eq!(run_cxlake(&sync("2024-03-03", "2024-03-05"), &env).await.code, 0);
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "SALTEDCX_API_KEY");
    wrong.push(("SALTEDCX_API_KEY", "not-the-key".to_string()));
    assert_eq!(run_cxlake(&sync("2024-03-05", "2024-03-07"), &wrong).await.code, 2);
    // 27, 28, 29 Feb done; 1, 2 Mar missing; 3, 4 done; 5, 6 failed.
    let expected = "###..##xx";

    let plain = run_cxlake(&["status", "--dest", &dest, "--calendar"], NO_ENV).await;
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(!plain.stdout.contains('\u{1b}'), "no escape codes off a terminal: {}", plain.stdout);
    assert!(plain.stdout.contains("saltedcx: 2024-02-27 to 2024-03-06"), "{}", plain.stdout);
    // Feb's three days leave no room for its name; March's starts over its first day.
    let months = plain.stdout.lines().nth(1).unwrap();
    let first_cell = plain.stdout.lines().find(|l| l.contains("  agent ")).unwrap().find('#').unwrap();
    assert_eq!(months.find("Mar 2024"), Some(first_cell + 3), "{}", plain.stdout);
    for dataset in ["agent", "customer", "engagement", "review", "turn"] {
        let row = plain.stdout.lines().find(|l| l.trim_start().starts_with(&format!("{dataset} "))).unwrap();
        assert!(row.contains(&format!(" {expected}  5 done, 2 missing, 2 failed")), "{row}");
    }
    assert!(plain.stdout.contains("legend:"), "{}", plain.stdout);

    let json =
        run_cxlake(&["status", "--dest", &dest, "--calendar", "--format", "json", "--days", "4"], NO_ENV)
            .await;
    let calendars: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let turn = calendars.as_array().unwrap().iter().find(|c| c["dataset"] == "turn").unwrap();
    assert_eq!(turn["first"], "2024-02-27", "JSON has every day; --days is for the drawing");
    let states: Vec<&str> = turn["days"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert_eq!(states, ["done", "done", "done", "missing", "missing", "done", "done", "failed", "failed"]);

    let command = format!("{} status --dest {dest} --calendar --days 4 --lookback-days 1", cxlake_bin());
    let (code, shown) = on_a_terminal(command, Vec::new()).await;
    assert_eq!(code, Some(0), "{shown}");
    let (done, lookback, failed) = ("\u{1b}[32m█\u{1b}[0m", "\u{1b}[36m▓\u{1b}[0m", "\u{1b}[1;31m✗\u{1b}[0m");
    let row = shown.lines().find(|l| l.trim_start().starts_with("turn ")).unwrap();
    assert!(row.contains(&format!("{done}{lookback}{failed}{failed}")), "{row:?}");
    assert!(shown.contains("saltedcx: 2024-03-03 to 2024-03-06"), "{shown}");
}
