//! The platforms this process knows, at run time: each one an object-safe [`SourceEntry`] built
//! from its static [`Platform`] type, so that a binary can add one the library does not know (a
//! source that lives only in the tests: `Registry::builtin().with::<P>()`, then
//! [`crate::cli::main`]). The per-source subcommands (`sync <source>`, `history <source>`,
//! `emulator <source>`) are built from the installed registry and dispatched through it.
//!
//! clap's derive asks for subcommands through static functions, so the registry a process runs
//! with is installed once, before the command line is built ([`install`]); without one, the
//! built-in platforms.

use std::marker::PhantomData;
use std::sync::OnceLock;

use anyhow::Result;
use clap::{ArgMatches, Args, FromArgMatches};
use futures::future::LocalBoxFuture;

use super::{EmulatorArgs, SyncArgs, UsageError};
use crate::report::RunReport;
use crate::sources::{Platform, Registrar};

/// One platform, as the command line uses it: what it is called, what it reads from the
/// environment, its argument definitions and the commands run with them.
pub trait SourceEntry: Send + Sync {
    /// `cxlake sync <name>`, the lake's top folder, the schemas' folder.
    fn name(&self) -> &'static str;
    /// How people write the platform's name.
    fn title(&self) -> &'static str;
    /// Its line in `cxlake sync --help`.
    fn description(&self) -> &'static str;
    /// The emulator's default port on 127.0.0.1 (0: none).
    fn emulator_port(&self) -> u16;
    /// `(config key, environment variable)` of each secret.
    fn secrets(&self) -> &'static [(&'static str, &'static str)];
    /// The DuckDB query `cxlake demo` prints (`{lake}` for the demo lake's root).
    fn demo_query(&self) -> &'static str;
    /// The schema files the platform brings itself (none when they are under `schemas/`).
    fn schemas(&self) -> &'static [(&'static str, &'static str)];
    /// The subcommand `kind` of this platform, with its arguments.
    fn command(&self, kind: CommandKind) -> clap::Command;
    /// `sync <name>` with the matches of its subcommand.
    fn sync<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<i32>>;
    /// Builds the source of a `sync <name>` command line and makes its cheap call (`check`).
    fn probe<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<String, String>>;
    fn history<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<i32>>;
    fn emulator<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<i32>>;
    /// Syncs the demo's days of this platform from its emulator into the demo lake.
    fn demo<'a>(&'a self, args: &'a super::DemoArgs) -> LocalBoxFuture<'a, Result<RunReport>>;
    /// Writes one day of `dataset` as the emulator serves it; the records written.
    fn synth(
        &self,
        dataset: &str,
        date: chrono::NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64>;
}

/// The three per-source subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Sync,
    History,
    Emulator,
}

/// A platform's static type behind a [`SourceEntry`].
struct Entry<P>(PhantomData<fn() -> P>);

fn parsed<T: FromArgMatches>(matches: &ArgMatches) -> Result<T> {
    T::from_arg_matches(matches).map_err(|e| UsageError(e.to_string()).into())
}

impl<P: Platform + 'static> SourceEntry for Entry<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn title(&self) -> &'static str {
        P::TITLE
    }

    fn description(&self) -> &'static str {
        P::DESCRIPTION
    }

    fn emulator_port(&self) -> u16 {
        P::EMULATOR_PORT
    }

    fn secrets(&self) -> &'static [(&'static str, &'static str)] {
        P::SECRETS
    }

    fn demo_query(&self) -> &'static str {
        P::DEMO_QUERY
    }

    fn schemas(&self) -> &'static [(&'static str, &'static str)] {
        P::SCHEMAS
    }

    fn command(&self, kind: CommandKind) -> clap::Command {
        let command = clap::Command::new(P::NAME);
        let command = match kind {
            CommandKind::Sync => SyncArgs::<P::Args>::augment_args(command),
            CommandKind::History => P::Args::augment_args(command),
            CommandKind::Emulator => {
                EmulatorArgs::<P::EmulatorArgs>::augment_args(command).mut_arg("port", |port| {
                    match P::EMULATOR_PORT {
                        0 => port.help("Not used: this emulator serves no port"),
                        own => port.help(format!("Port on 127.0.0.1 (0 picks a free one) [default: {own}]")),
                    }
                })
            }
        };
        // After the arguments: their types' own doc comments would replace it.
        command.about(P::DESCRIPTION)
    }

    fn sync<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<i32>> {
        Box::pin(async move { super::sync::<P>(parsed(matches)?).await })
    }

    fn probe<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let args = parsed(matches).map_err(|e| e.to_string())?;
            super::operate::probe::<P>(&args).await
        })
    }

    fn history<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<i32>> {
        Box::pin(async move { super::history::<P>(parsed(matches)?).await })
    }

    fn emulator<'a>(&'a self, matches: &'a ArgMatches) -> LocalBoxFuture<'a, Result<i32>> {
        Box::pin(async move { super::demo::run_emulator::<P>(parsed(matches)?).await })
    }

    fn demo<'a>(&'a self, args: &'a super::DemoArgs) -> LocalBoxFuture<'a, Result<RunReport>> {
        Box::pin(super::demo::demo_source::<P>(args))
    }

    fn synth(
        &self,
        dataset: &str,
        date: chrono::NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        P::synth(dataset, date, per_day, out).map_err(|e| UsageError::from(e).into())
    }
}

/// The platforms a process runs with, in the order `--help` and `demo` show them.
pub struct Registry {
    entries: Vec<Box<dyn SourceEntry>>,
}

impl Registrar for Registry {
    fn add<P: Platform + 'static>(&mut self) {
        assert!(self.get(P::NAME).is_none(), "two platforms are named {}", P::NAME);
        self.entries.push(Box::new(Entry::<P>(PhantomData)));
    }
}

impl Registry {
    /// The platforms built into cxlake ([`crate::sources::register_builtin`]).
    pub fn builtin() -> Registry {
        let mut registry = Registry { entries: Vec::new() };
        crate::sources::register_builtin(&mut registry);
        registry
    }

    /// This registry and one more platform.
    pub fn with<P: Platform + 'static>(mut self) -> Registry {
        self.add::<P>();
        self
    }

    pub fn get(&self, name: &str) -> Option<&dyn SourceEntry> {
        self.entries.iter().find(|e| e.name() == name).map(|e| e.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn SourceEntry> {
        self.entries.iter().map(|e| e.as_ref())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|e| e.name()).collect()
    }
}

static INSTALLED: OnceLock<Registry> = OnceLock::new();

/// Makes `registry` the one this process runs with, its platforms' own schema files included.
/// Once per process, before the command line is built; `false` if one was installed already.
pub fn install(registry: Registry) -> bool {
    for entry in registry.iter() {
        crate::schema::register_embedded(entry.name(), entry.schemas());
    }
    INSTALLED.set(registry).is_ok()
}

/// The registry this process runs with: the one installed, else the built-in platforms.
pub fn registry() -> &'static Registry {
    INSTALLED.get_or_init(Registry::builtin)
}

/// A per-source subcommand as parsed: the platform it names and its arguments' matches, parsed
/// into the platform's own types by its entry. `KIND` is a [`CommandKind`] as a number (clap's
/// traits are implemented once per kind).
#[derive(Debug, Clone)]
pub struct SourceCommand<const KIND: u8> {
    pub source: &'static str,
    matches: ArgMatches,
}

pub type SyncCommand = SourceCommand<0>;
pub type HistoryCommand = SourceCommand<1>;
pub type EmulatorCommand = SourceCommand<2>;

impl<const KIND: u8> SourceCommand<KIND> {
    const KIND: CommandKind = match KIND {
        0 => CommandKind::Sync,
        1 => CommandKind::History,
        _ => CommandKind::Emulator,
    };

    pub fn entry(&self) -> &'static dyn SourceEntry {
        registry().get(self.source).expect("parsed from the installed registry")
    }

    pub fn matches(&self) -> &ArgMatches {
        &self.matches
    }
}

impl<const KIND: u8> FromArgMatches for SourceCommand<KIND> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        use clap::error::ErrorKind;
        let (name, sub) = matches
            .subcommand()
            .ok_or_else(|| clap::Error::raw(ErrorKind::MissingSubcommand, "name a source"))?;
        let entry = registry()
            .get(name)
            .ok_or_else(|| clap::Error::raw(ErrorKind::InvalidSubcommand, format!("no source `{name}`")))?;
        Ok(SourceCommand { source: entry.name(), matches: sub.clone() })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<const KIND: u8> clap::Subcommand for SourceCommand<KIND> {
    fn augment_subcommands(command: clap::Command) -> clap::Command {
        registry().iter().fold(command, |command, entry| command.subcommand(entry.command(Self::KIND)))
    }

    fn augment_subcommands_for_update(command: clap::Command) -> clap::Command {
        Self::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        registry().get(name).is_some()
    }
}
