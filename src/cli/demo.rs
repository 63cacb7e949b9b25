//! `emulator <source>` and `demo`: the built-in emulators, in the foreground or synced into a
//! demo lake with the queries that read it.

use super::*;

pub(super) async fn run_emulator<P: Platform>(args: EmulatorArgs<P::EmulatorArgs>) -> Result<i32> {
    let port = args.port.unwrap_or(P::EMULATOR_PORT);
    let emulator = P::start_emulator(&args.emulator, port).await.map_err(UsageError::from)?;
    outln!("{} emulator listening on {}", P::TITLE, emulator.base_url());
    for (name, value) in emulator.env() {
        outln!("  export {name}={value}");
    }
    outln!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = emulator.wait() => {}
    }
    Ok(exit_code::OK)
}

/// Syncs `args.days` days of one source from its emulator into the demo lake.
pub(super) async fn demo_source<P: Platform>(args: &DemoArgs) -> Result<RunReport> {
    let (emulator, source) = P::demo().await.map_err(UsageError::from)?;
    outln!("{} emulator running on {}", P::TITLE, emulator.base_url());
    let today = window::start_of_today(Utc::now());
    let from = today - chrono::Duration::days(i64::from(args.days.max(1)));
    let lake = Lake::open(&args.dest)?;
    let registry = plan::registry(None)?;
    let datasets = plan::select_datasets(&registry, P::NAME, None)?;
    let names: Vec<String> = datasets.iter().map(|d| d.dataset.clone()).collect();
    let planned = source
        .plan_windows(Some(from.date_naive()), today.date_naive(), &names, &Default::default())
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let windows = match planned {
        Some(windows) => windows,
        None => window::windows_between(from, today, Utc::now())?,
    };
    let options = WriteOptions { timezone: source.timezone(), ..WriteOptions::default() };
    let plan = SyncPlan::new(source, lake.dest, datasets, windows, None, options);
    outln!(
        "syncing {} day(s) of {} from {} to {} into {}",
        plan.windows.len(),
        P::TITLE,
        from.date_naive(),
        today.date_naive(),
        args.dest
    );
    let report = plan::run(&plan).await?;
    emulator.shutdown().await;
    out!("{}", report.render());
    Ok(report)
}

pub(super) async fn demo(args: DemoArgs) -> Result<i32> {
    let started = Instant::now();
    let reports = demo_every_source(&args).await?;
    outln!("\n{:<22} {:>9} {:>6} {:>12}", "dataset", "rows", "files", "bytes");
    for report in &reports {
        for (dataset, (rows, files, bytes)) in report.rows_by_dataset() {
            let name = format!("{}.{dataset}", report.source);
            outln!("{name:<22} {rows:>9} {files:>6} {bytes:>12}");
        }
    }
    outln!("done in {:.1} s\n", started.elapsed().as_secs_f64());
    for report in &reports {
        for table in &report.current {
            outln!("{}", table.summary());
        }
    }
    let lake = args.dest.trim_end_matches('/');
    outln!("\nEvery dataset as a DuckDB view (<source>_<dataset>, <source>_<dataset>_current):\n");
    outln!("  duckdb -init {lake}/_cxlake/views.sql\n");
    outln!("Or query the files directly (e.g. python -c \"import duckdb; duckdb.sql('''…''').show()\"):\n");
    for (_, query) in source_demo_queries() {
        for line in query.replace("{lake}", lake).lines() {
            outln!("  {line}");
        }
        outln!();
    }
    outln!(
        "How each tenant's data differs from its declaration (every value is kept), and the fix:\n\n  \
         cxlake drift --dest {lake}"
    );
    Ok(reports.iter().map(RunReport::exit_code).max().unwrap_or(exit_code::OK))
}
