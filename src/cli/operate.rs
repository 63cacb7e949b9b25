//! The commands that run cxlake in production: `sync --all` over the config file's sources,
//! `config show`, `check` (the doctor), `plan` (shards for workers), and the metrics file
//! written from what this process's syncs did.

use super::*;

/// A configured source's `sync <name>` command line, parsed exactly as if typed.
struct ConfiguredSync {
    secrets: crate::config::Secrets,
    /// The command line the file's settings became (for where each setting came from).
    argv: Vec<String>,
    matches: clap::ArgMatches,
}

impl ConfiguredSync {
    /// `[sources.<name>]` of `config`, with `extra` flags after the file's; resolves and hands
    /// over its secrets. Errors are usage errors naming the file and the table.
    fn parse(
        config: &ConfigFile,
        root: &clap::Command,
        name: &str,
        extra: &[String],
    ) -> Result<ConfiguredSync> {
        let secrets = source_secrets(name).ok_or_else(|| {
            usage(format!(
                "{}: [sources.{name}] is not a source; known: {}",
                config.path.display(),
                source_names().join(", ")
            ))
        })?;
        let argv = config.sync_argv(root, name, extra, secrets)?;
        let matches = root.clone().try_get_matches_from(&argv).map_err(|e| {
            usage(format!("{} [sources.{name}]: {}", config.path.display(), e.render().to_string().trim()))
        })?;
        Ok(ConfiguredSync { secrets, argv, matches })
    }

    /// The parsed `sync <name>` command.
    fn command(&self) -> Result<SyncCommand> {
        use clap::FromArgMatches;
        match Cli::from_arg_matches(&self.matches).map_err(|e| usage(e.to_string()))?.command {
            Command::Sync(SyncRequest { source: Some(command), .. }) => Ok(command),
            _ => unreachable!("sync_argv builds a `sync <source>` command line"),
        }
    }
}

/// What this process's syncs did, for `--metrics-file`.
pub(super) fn observed() -> &'static std::sync::Mutex<crate::metrics::Observed> {
    static OBSERVED: std::sync::OnceLock<std::sync::Mutex<crate::metrics::Observed>> =
        std::sync::OnceLock::new();
    OBSERVED.get_or_init(Default::default)
}

pub(super) fn record_report(report: &RunReport) {
    observed().lock().expect("observed").reports.push(report.clone());
}

pub(super) fn record_source_failure(source: &str) {
    observed().lock().expect("observed").failed_sources.push(source.to_string());
}

/// Writes the metrics file: the runs' outcome and, per dataset of the lakes they wrote, when
/// its newest done window was committed.
pub(super) async fn write_metrics(path: &Path) -> Result<()> {
    let mut observed = observed().lock().expect("observed").clone();
    let mut seen = BTreeSet::new();
    for report in &observed.reports {
        if !seen.insert((report.dest.clone(), report.source.clone())) {
            continue;
        }
        let Ok(dest) = Destination::parse(&report.dest) else { continue };
        let records = StateStore::new(dest.clone()).load_windows(&report.source).await.unwrap_or_default();
        let status = crate::status::source_status(report.source.clone(), &records, None);
        for (dataset, mut d) in status.datasets {
            if let Some(at) = d.last_committed_at {
                observed.last_success.insert((report.source.clone(), dataset.clone()), at);
            }
            let duplicates = crate::current::duplicate_keys(&dest, &report.source, &dataset).await;
            d.drift.duplicate_keys = duplicates.unwrap_or_default().values().map(|k| k.rows).sum();
            observed.drift.insert((report.source.clone(), dataset), d.drift);
        }
    }
    crate::metrics::write_textfile(path, &crate::metrics::render(&observed))
        .with_context(|| format!("writing the metrics file {}", path.display()))
}

pub(super) async fn probe<P: Platform>(args: &SyncArgs<P::Args>) -> Result<String, String> {
    let source = P::source(&args.source).map_err(|e| e.0)?;
    source.probe().await.map_err(|e| e.to_string())
}

/// `cxlake check`.
pub(super) async fn check(args: CheckArgs, config: Option<&ConfigFile>) -> Result<i32> {
    use crate::doctor::{self, CheckResult};
    let mut results = Vec::new();
    if let Some(config) = config {
        results.push(CheckResult::pass(
            "config",
            format!("{}: {} source(s)", config.path.display(), config.source_names().len()),
        ));
    }
    match plan::registry(args.schemas.dir.as_deref()) {
        Ok(registry) => results.push(CheckResult::pass(
            "schemas",
            format!(
                "{} dataset(s) ({})",
                registry.iter().count(),
                match &args.schemas.dir {
                    Some(dir) => format!("embedded, overridden from {}", dir.display()),
                    None => "embedded".into(),
                }
            ),
        )),
        Err(e) => results.push(CheckResult::fail("schemas", format!("{e:#} — fix the schema file it names"))),
    }
    let run_id = new_run_id();
    match Some(args.dest.dest.as_str()).filter(|d| !d.trim().is_empty()).map(Destination::parse) {
        None => results.push(CheckResult::fail(
            "destination",
            "no destination: pass --dest or set [destination] url in the config file",
        )),
        Some(Err(e)) => results.push(CheckResult::fail("destination", format!("{e}"))),
        Some(Ok(dest)) => {
            let checked = doctor::check_destination(&dest, &run_id).await;
            let writable = checked.first().is_some_and(|r| r.ok);
            results.extend(checked);
            if writable {
                results.push(doctor::check_leases(&dest, &run_id).await);
            }
        }
    }
    let root = command_tree();
    if let Some(config) = config {
        for name in config.source_names() {
            let label = format!("source {name}");
            let command = match ConfiguredSync::parse(config, &root, &name, &[]).and_then(|c| c.command()) {
                Ok(command) => command,
                Err(e) => {
                    results.push(CheckResult::fail(label, format!("its settings do not parse: {e:#}")));
                    continue;
                }
            };
            let started = Instant::now();
            results.push(match probe_sync_command(&command).await {
                Ok(detail) => {
                    CheckResult::pass(label, format!("{detail} ({} ms)", started.elapsed().as_millis()))
                }
                Err(e) => CheckResult::fail(label, e),
            });
        }
    }
    out!("{}", doctor::render(&results));
    Ok(if results.iter().all(|r| r.ok) { exit_code::OK } else { exit_code::USAGE })
}

/// `cxlake plan`: the shards of a range, each as the `--from`/`--to` a worker would sync.
pub(super) fn plan(args: PlanArgs) -> Result<i32> {
    let from = window::parse_time(&args.from).map_err(|e| usage(e.to_string()))?;
    let to = window::parse_time(&args.to).map_err(|e| usage(e.to_string()))?;
    let windows = window::windows_between(from, to, Utc::now()).map_err(|e| usage(e.to_string()))?;
    if args.shards == 0 {
        return Err(usage("--shards must be at least 1"));
    }
    let shards: Vec<serde_json::Value> = (0..args.shards)
        .map(|index| {
            let part = window::shard(&windows, index, args.shards);
            serde_json::json!({
                "shard": format!("{index}/{}", args.shards),
                "index": index,
                "windows": part.len(),
                "from": part.first().map(|w| w.date.to_string()),
                "to": part.last().map(|w| w.next().date.to_string()),
            })
        })
        .collect();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&shards)?);
        return Ok(exit_code::OK);
    }
    outln!("{} window(s) from {} to {} in {} shard(s):", windows.len(), args.from, args.to, args.shards);
    for shard in &shards {
        let range = match (shard["from"].as_str(), shard["to"].as_str()) {
            (Some(from), Some(to)) => format!("--from {from} --to {to}"),
            _ => "(nothing)".into(),
        };
        outln!(
            "  --shard {:<6} {:>4} window(s)  {range}",
            shard["shard"].as_str().unwrap_or_default(),
            shard["windows"]
        );
    }
    Ok(exit_code::OK)
}

/// `cxlake config show`.
pub(super) fn config_show(config: Option<&ConfigFile>) -> Result<i32> {
    use crate::config::effective;
    let Some(config) = config else {
        return Err(usage("no config file: pass --config cxlake.toml or set CXLAKE_CONFIG"));
    };
    let root = command_tree();
    outln!(
        "# {}: the effective settings; command line > environment > file > defaults; secrets redacted",
        config.path.display()
    );
    let mut code = exit_code::OK;
    let mut globals_shown = false;
    for name in config.source_names() {
        let ConfiguredSync { secrets, argv, matches } = match ConfiguredSync::parse(config, &root, &name, &[])
        {
            Ok(parsed) => parsed,
            Err(e) => {
                outln!("\n[sources.{name}]\n# cannot run: {}", format!("{e:#}").replace('\n', "\n# "));
                code = exit_code::USAGE;
                continue;
            }
        };
        let from_file: Vec<String> = argv
            .iter()
            .filter_map(|a| a.strip_prefix("--"))
            .map(|a| a.split('=').next().unwrap_or(a).to_string())
            .collect();
        if !globals_shown {
            for setting in effective(&root, &matches, &from_file) {
                outln!(
                    "{:<48} # {}",
                    format!("{} = {:?}", setting.key, setting.value),
                    setting.origin.name()
                );
            }
            globals_shown = true;
        }
        let leaf =
            root.find_subcommand("sync").and_then(|s| s.find_subcommand(&name)).expect("a registered source");
        let sub = matches
            .subcommand_matches("sync")
            .and_then(|m| m.subcommand_matches(&name))
            .expect("parsed above");
        outln!("\n[sources.{name}]");
        for setting in effective(leaf, sub, &from_file) {
            outln!("{:<48} # {}", format!("{} = {:?}", setting.key, setting.value), setting.origin.name());
        }
        for (key, var) in secrets {
            let origin = match config.secret_reference_of(&name, key) {
                Some(reference) => format!("file: {reference}"),
                None if config.secret_reference_of(&name, &format!("{key}_file")).is_some() => {
                    format!("read from {key}_file")
                }
                None if std::env::var_os(var).is_some() => format!("environment: {var}"),
                None => format!("not set ({var} or {key}_file)"),
            };
            outln!("{:<48} # {origin}", format!("{key} = \"<redacted>\""));
        }
    }
    Ok(code)
}

/// `cxlake sync --all`: every source of the config file, one after another, each with the
/// file's settings and the range given here. A source that fails (a bad key, a locked window)
/// does not stop the next; the exit code is the worst of theirs.
pub(super) async fn sync_all(request: SyncRequest, config: Option<&ConfigFile>) -> Result<i32> {
    let Some(config) = config else {
        return Err(usage(
            "sync --all syncs the sources of a config file: pass --config cxlake.toml or set CXLAKE_CONFIG",
        ));
    };
    let names = config.source_names();
    if names.is_empty() {
        return Err(usage(format!(
            "{} configures no source: add a [sources.<name>] table",
            config.path.display()
        )));
    }
    let mut extra = Vec::new();
    for (flag, value) in [("--from", &request.from), ("--to", &request.to)] {
        if let Some(value) = value {
            extra.push(format!("{flag}={value}"));
        }
    }
    if request.skip_done {
        extra.push("--skip-done".into());
    }
    let root = command_tree();
    let mut outcomes: Vec<(String, i32)> = Vec::new();
    for name in &names {
        if crate::interrupt::requested() {
            outcomes.push((name.clone(), exit_code::INTERRUPTED));
            continue;
        }
        tracing::info!(source = %name, "Syncing a configured source");
        let result = async {
            let command = ConfiguredSync::parse(config, &root, name, &extra)?.command()?;
            run_sync_command(command).await
        }
        .await;
        let code = match result {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {name}: {}", super::render_error(&error));
                record_source_failure(name);
                exit_code_of(&error)
            }
        };
        outcomes.push((name.clone(), code));
    }
    outln!("\n{:<14} {:>4}  outcome", "source", "exit");
    for (name, code) in &outcomes {
        let outcome = match *code {
            exit_code::OK => "ok",
            exit_code::PARTIAL => "some windows failed",
            exit_code::USAGE => "not run: configuration or credentials",
            exit_code::LOCKED => "windows held by another run",
            exit_code::INTERRUPTED => "interrupted (Ctrl-C or SIGTERM)",
            _ => "failed",
        };
        outln!("{name:<14} {code:>4}  {outcome}");
    }
    Ok(outcomes.iter().map(|(_, code)| *code).max().unwrap_or(exit_code::OK))
}
