//! The commands about declarations and data rather than a lake: `schema list|show|draft` and
//! `synth`.

use super::*;

pub(super) fn synth(args: SynthArgs) -> Result<i32> {
    let Some((source, dataset)) = args.dataset.split_once('.') else {
        return Err(usage(format!(
            "`{}`: name the dataset as source.dataset, e.g. saltedcx.turn",
            args.dataset
        )));
    };
    let out: Box<dyn std::io::Write> = match &args.out {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = output::Watched::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let written = synth_source(source, dataset, args.date, args.per_day, &mut out).and_then(|rows| {
        std::io::Write::flush(&mut out).context("writing the synthetic data").map(|()| rows)
    });
    match written {
        Ok(rows) => tracing::info!(dataset = %args.dataset, rows, "Generated"),
        // `cxlake synth … | head`: the reader had what it wanted.
        Err(_) if out.reader_gone => {}
        Err(e) => return Err(e),
    }
    Ok(exit_code::OK)
}

/// `cxlake schema draft`: the TOML draft for `name` from the sample at `file`.
fn schema_draft(name: &str, file: &Path, rows: u64) -> Result<String> {
    use crate::schema::draft::Sample;
    let (source, dataset) = name
        .split_once('.')
        .filter(|(s, d)| crate::schema::is_identifier(s) && crate::schema::is_identifier(d))
        .ok_or_else(|| {
            usage(format!("`{name}` is not source.dataset in lowercase letters, digits and `_`"))
        })?;
    let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut sample = Sample::default();
    crate::decode::sample_file(&mut sample, file, &file_name, rows)
        .map_err(|e| usage(format!("{}: {e}", file.display())))?;
    Ok(sample.draft(source, dataset, &file_name, &file.display().to_string()))
}

pub(super) async fn schema(command: SchemaCommand) -> Result<i32> {
    match command {
        SchemaCommand::List { schemas } => {
            let registry = plan::registry(schemas.dir.as_deref())?;
            outln!("{:<22} {:>7}  {:<20} description", "dataset", "columns", "file");
            for s in registry.iter() {
                outln!("{:<22} {:>7}  {:<20} {}", s.qualified_name(), s.columns.len(), s.file, s.description);
            }
        }
        SchemaCommand::Draft { name, file: Some(file), rows, .. } => {
            out!("{}", schema_draft(&name, &file, rows)?);
        }
        SchemaCommand::Draft { name, from_lake: Some(dest), from, to, rows, schemas, .. } => {
            let registry = plan::registry(schemas.dir.as_deref())?;
            let (from, to) = (plan::day_of(from.as_deref())?, plan::day_of(to.as_deref())?);
            out!("{}", plan::redraw(&registry, &Lake::existing(&dest)?, &name, from, to, rows).await?);
        }
        SchemaCommand::Draft { .. } => return Err(usage("name a sample FILE or --from-lake DEST")),
        SchemaCommand::Docs { format, source, out, schemas } => {
            let registry = plan::registry(schemas.dir.as_deref())?;
            if let Some(source) = source.as_deref().filter(|s| registry.of_source(s).next().is_none()) {
                return Err(usage(format!("no source `{source}`; known: {}", registry.sources().join(", "))));
            }
            let text = match format {
                DocsFormat::Markdown => crate::schema::docs::markdown(&registry, source.as_deref()),
                DocsFormat::Json => {
                    serde_json::to_string_pretty(&crate::schema::docs::json(&registry, source.as_deref()))?
                        + "\n"
                }
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?
                }
                None => out!("{text}"),
            }
        }
        SchemaCommand::Show { name, schemas } => {
            let registry = plan::registry(schemas.dir.as_deref())?;
            let s = registry.get(&name).map_err(|e| usage(e.to_string()))?;
            let version = s.version.as_deref().map(|v| format!(", newest by {v}")).unwrap_or_default();
            outln!(
                "{} — {} ({}; key {}{version})",
                s.qualified_name(),
                s.description,
                s.file,
                s.key_display()
            );
            outln!("{:<38} {:<30} {:<8} {:<12} description", "column", "arrow type", "nullable", "pii");
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            // A personal column shows what it holds and its own action, when it has one.
            let pii = |c: &crate::schema::Column| {
                use crate::schema::pii::PiiKind;
                let kind = match c.pii_kind {
                    PiiKind::Value => "yes",
                    PiiKind::Email => "email",
                    PiiKind::Phone => "phone",
                    PiiKind::Text => "text",
                };
                match (c.pii, c.pii_action) {
                    (false, _) => "no".to_string(),
                    (true, Some(action)) => format!("{kind}:{}", action.name()),
                    (true, None) => kind.to_string(),
                }
            };
            for c in &s.columns {
                let deprecated = if c.deprecated { " (deprecated)" } else { "" };
                outln!(
                    "{:<38} {:<30} {:<8} {:<12} {}{deprecated}",
                    c.name,
                    c.column_type.to_string(),
                    yes_no(c.nullable),
                    pii(c),
                    c.description
                );
                for m in c.members() {
                    outln!(
                        "{:<38} {:<30} {:<8} {:<12} {}",
                        format!("  .{}", m.name),
                        m.column_type.to_string(),
                        yes_no(m.nullable),
                        pii(m),
                        m.description
                    );
                }
            }
        }
    }
    Ok(exit_code::OK)
}
