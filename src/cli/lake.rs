//! The commands that look after a lake as a whole: `status`, `drift`, `current`, `forget` and
//! `vacuum`. Each turns its arguments into a request for [`crate::plan`] and prints what came
//! back; the leases, the checks and the work are the planner's.

use super::*;

fn registry_and_lake(schemas: &SchemasArg, dest: &str) -> Result<(crate::schema::SchemaRegistry, Lake)> {
    Ok((plan::registry(schemas.dir.as_deref())?, Lake::open(dest)?))
}

pub(super) async fn current(args: CurrentArgs) -> Result<i32> {
    let (registry, lake) = registry_and_lake(&args.schemas, &args.dest)?;
    let sources = lake.sources(&registry, args.source.as_deref()).await?;
    let memory = memory_budget(&args.memory.budget)?;
    let times = args.leases.times()?;
    let tables = plan::refresh_current(
        &lake,
        &registry,
        &sources,
        args.datasets.as_deref(),
        args.full,
        &memory,
        times,
    )
    .await?;
    for table in tables {
        outln!("{}", table.summary());
    }
    outln!("views: {}", lake.views_file());
    Ok(exit_code::OK)
}

/// Whom `forget --email/--phone/--key` names.
fn forget_target(args: &ForgetArgs) -> Result<crate::erase::Target> {
    use crate::erase::Target;
    Ok(match (&args.email, &args.phone, &args.key) {
        (Some(email), _, _) if email.contains('@') => Target::email(email),
        (Some(_), _, _) => return Err(usage("--email: not an e-mail address")),
        (_, Some(phone), _) if phone.chars().any(|c| c.is_ascii_digit()) => Target::phone(phone),
        (_, Some(_), _) => return Err(usage("--phone: no digits in it")),
        (_, _, Some(key)) => {
            let parsed = key.split_once('=').and_then(|(qualified, id)| {
                let (source, dataset) = qualified.split_once('.')?;
                Some(Target::Key { source: source.into(), dataset: dataset.into(), id: id.trim().into() })
            });
            parsed.ok_or_else(|| {
                usage(format!("--key `{key}`: write it as source.dataset=ID, e.g. saltedcx.customer=c-17"))
            })?
        }
        _ => return Err(usage("name whom to forget: --email, --phone or --key")),
    })
}

pub(super) async fn forget(args: ForgetArgs) -> Result<i32> {
    let (registry, lake) = registry_and_lake(&args.schemas, &args.dest)?;
    let request = plan::ForgetRequest {
        target: forget_target(&args)?,
        dry_run: args.dry_run,
        verify_only: args.verify,
    };
    let (report, verification) = plan::forget(&lake, &registry, &request, args.leases.times()?).await?;
    if let Some(report) = report {
        out!("{}", report.render());
    }
    match verification {
        Some(v) => {
            out!("{}", v.render());
            Ok(if v.traces.is_empty() { exit_code::OK } else { exit_code::PARTIAL })
        }
        None => Ok(exit_code::OK),
    }
}

pub(super) async fn vacuum(args: VacuumArgs) -> Result<i32> {
    let lake = Lake::open(&args.dest)?;
    let retention = parse_duration(&args.older_than)?;
    let registry = plan::registry(None)?;
    let sources = lake.sources(&registry, args.source.as_deref()).await?;
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    let vacuumed = plan::vacuum_tables(&lake, &registry, &sources, retention, args.dry_run).await?;
    for (relative, files) in &vacuumed {
        outln!("{relative}: {verb} {} file(s)", files.len());
        for file in files {
            outln!("  {file}");
        }
    }
    if vacuumed.is_empty() {
        outln!("no Delta tables in {}", lake.text);
    }
    if let Some(age) = &args.raw_older_than {
        let age = chrono::Duration::from_std(parse_duration(age)?)
            .map_err(|e| usage(format!("--raw-older-than: {e}")))?;
        let before = (Utc::now() - age).date_naive();
        for (source, pruned) in
            plan::prune_raw(&lake, &sources, before, args.dry_run, args.leases.times()?).await?
        {
            outln!(
                "_cxlake/raw/{source}: {verb} {} raw file(s), {:.1} MB, of {} window(s) before {before}",
                pruned.files,
                pruned.stored_bytes as f64 / 1e6,
                pruned.windows
            );
        }
    }
    Ok(exit_code::OK)
}

/// `cxlake drift`: per dataset, how the data differs from its declaration, and the fix. Exit 0
/// either way: drift is information (nothing was lost), not a failure.
pub(super) async fn drift(args: DriftArgs) -> Result<i32> {
    let lake = Lake::existing(&args.dest)?;
    let drifts = crate::drift::lake_drift(&lake.dest, args.source.as_deref()).await?;
    if args.json {
        let with_fix: Vec<serde_json::Value> = drifts
            .iter()
            .map(|d| {
                let mut value = serde_json::to_value(d).expect("drift serialises");
                value["fix"] = serde_json::Value::from(d.fix(&args.dest));
                value
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&with_fix)?);
    } else {
        out!("{}", crate::drift::render(&args.dest, &drifts));
    }
    Ok(exit_code::OK)
}

pub(super) async fn status(args: StatusArgs, config: Option<&ConfigFile>) -> Result<i32> {
    // Looking must not create: a mistyped local path is an error, not a new empty lake.
    let lake = Lake::existing(&args.dest)?;
    let json = args.json || args.format == StatusFormat::Json;
    if args.calendar {
        let lookback = |source: &str| {
            args.lookback_days.unwrap_or_else(|| {
                config
                    .and_then(|c| c.source_integer(source, "lookback_days"))
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0)
            })
        };
        let calendars = crate::calendar::lake_calendar(&lake.dest, lookback).await?;
        if json {
            outln!("{}", serde_json::to_string_pretty(&calendars)?);
        } else {
            use std::io::IsTerminal;
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            out!("{}", crate::calendar::render(&calendars, args.days.map(|n| n as usize), colour));
        }
        if args.max_age.is_none() {
            return Ok(exit_code::OK);
        }
    }
    let sources = crate::status::lake_status(&lake.dest).await?;
    if args.calendar {
        // The calendar was the answer; --max-age still checks.
    } else if json {
        outln!("{}", serde_json::to_string_pretty(&sources)?);
    } else {
        out!("{}", crate::status::render(&args.dest, &sources));
    }
    let Some(max_age) = &args.max_age else { return Ok(exit_code::OK) };
    let max_age =
        chrono::Duration::from_std(parse_duration(max_age)?).map_err(|e| usage(format!("--max-age: {e}")))?;
    let watched: Vec<String> = match config {
        Some(config) if !config.source_names().is_empty() => config.source_names(),
        _ => sources.iter().map(|s| s.source.clone()).collect(),
    };
    let now = Utc::now();
    let mut stale = Vec::new();
    for name in &watched {
        match sources.iter().find(|s| &s.source == name) {
            None => stale.push(format!("{name}: no done window in {}", args.dest)),
            Some(status) => {
                for (dataset, d) in &status.datasets {
                    match d.age(now) {
                        Some(age) if age <= max_age => {}
                        Some(age) => stale.push(format!(
                            "{name}.{dataset}: complete until {}, {} ago (more than --max-age {})",
                            d.complete_until.map(|t| t.to_rfc3339()).unwrap_or_default(),
                            crate::status::human_age(age),
                            args.max_age.as_deref().unwrap_or_default()
                        )),
                        None => stale.push(format!("{name}.{dataset}: no done window")),
                    }
                }
            }
        }
    }
    if stale.is_empty() {
        return Ok(exit_code::OK);
    }
    for line in &stale {
        eprintln!("STALE {line}");
    }
    Ok(exit_code::STALE)
}

/// `cxlake dbt sources`.
pub(super) async fn dbt_sources(args: DbtSourcesArgs) -> Result<i32> {
    let lake = Lake::existing(&args.dest)?;
    let registry = plan::registry(args.schemas.dir.as_deref())?;
    let titles = super::registry().iter().map(|e| (e.name().to_string(), e.title().to_string())).collect();
    let max_age = parse_duration(&args.max_age).map_err(|e| usage(format!("--max-age: {e}")))?;
    let yml = crate::dbt::sources_yml(&lake.dest, &registry, &titles, max_age).await?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, yml).with_context(|| format!("writing {}", path.display()))?;
            outln!("wrote the dbt sources of {} to {}", args.dest.dest, path.display());
        }
        None => out!("{yml}"),
    }
    Ok(exit_code::OK)
}
