//! `cxlake.toml`: one file that declares the destination, the output options and every source.
//!
//! The file is turned into command-line flags — its keys are named after the flags — inserted
//! right after the subcommand, before what the user typed, so the parser sees one command line
//! and every flag is validated exactly as if typed. The order of precedence is: command line,
//! then environment variables, then the file, then the defaults (a file key whose flag's
//! environment variable is set is left out).
//!
//! ```toml
//! log_format = "json"                    # global flags at the top: log, log_format, progress, metrics_file, threads
//! [destination]
//! url = "s3://lake/contact-center"       # --dest
//! format = "delta"
//! [output]                               # any write flag, for every source
//! max_rejects = "0.1%"
//! [sources.saltedcx]                     # `sync saltedcx` flags
//! api_key = "${SALTEDCX_API_KEY}"        # secrets: only ${VAR} or <key>_file
//! lookback_days = 3
//! ```
//!
//! Secrets are never inline: a source's secret keys ([`crate::sources::Platform::SECRETS`]) and
//! any key that looks like one take only a `${VAR}` reference, resolved at start and handed to
//! the source through [`crate::secrets`] (never on a command line, never in `config show`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The file could not be used; nothing was attempted (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// A parsed `cxlake.toml`.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    globals: toml::Table,
    destination: toml::Table,
    output: toml::Table,
    sources: BTreeMap<String, toml::Table>,
}

/// A source's secrets: `(config key, environment variable)`.
pub type Secrets = &'static [(&'static str, &'static str)];

/// Where a setting's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    Environment,
    File,
    Default,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::CommandLine => "command line",
            Origin::Environment => "environment",
            Origin::File => "file",
            Origin::Default => "default",
        }
    }
}

const GLOBAL_KEYS: &[&str] = &["log", "log_format", "progress", "metrics_file", "threads"];
const SECRET_WORDS: &[&str] = &["key", "token", "password", "secret", "passphrase"];

/// Whether a flag takes a local path (its value name says DIR, PATH or FILE).
fn takes_path(arg: &clap::Arg) -> bool {
    arg.get_value_names()
        .is_some_and(|names| names.iter().any(|n| ["DIR", "PATH", "FILE"].iter().any(|w| n.contains(w))))
}

/// `--config PATH`, `--config=PATH` or `CXLAKE_CONFIG`, if given.
pub fn find_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CXLAKE_CONFIG").filter(|p| !p.is_empty()).map(PathBuf::from)
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let error = |message: String| ConfigError { path: path.display().to_string(), message };
        let text =
            std::fs::read_to_string(path).map_err(|e| error(format!("cannot read the config file: {e}")))?;
        ConfigFile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let error = |message: String| ConfigError { path: path.display().to_string(), message };
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| error(e.to_string()))?;
        let mut table = |name: &str| -> Result<toml::Table, ConfigError> {
            match root.remove(name) {
                None => Ok(toml::Table::new()),
                Some(toml::Value::Table(t)) => Ok(t),
                Some(_) => Err(error(format!("`{name}` must be a table: [{name}]"))),
            }
        };
        let destination = table("destination")?;
        let output = table("output")?;
        let mut sources = BTreeMap::new();
        for (name, value) in table("sources")? {
            match value {
                toml::Value::Table(t) => {
                    sources.insert(name, t);
                }
                _ => return Err(error(format!("`sources.{name}` must be a table: [sources.{name}]"))),
            }
        }
        for key in root.keys() {
            if !GLOBAL_KEYS.contains(&key.as_str()) {
                return Err(error(format!(
                    "unknown top-level key `{key}`; the file has [destination], [output], [sources.<name>] and {}",
                    GLOBAL_KEYS.join(", ")
                )));
            }
        }
        Ok(ConfigFile { path: path.to_path_buf(), globals: root, destination, output, sources })
    }

    fn error(&self, message: String) -> ConfigError {
        ConfigError { path: self.path.display().to_string(), message }
    }

    /// A source's whole-number setting (`lookback_days = 3` under `[sources.<name>]`), if set.
    pub fn source_integer(&self, source: &str, key: &str) -> Option<i64> {
        self.sources.get(source)?.get(key)?.as_integer()
    }

    /// The sources the file configures, in the file's (alphabetical) order.
    pub fn source_names(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }

    /// Inserts the file's flags into `argv` for the subcommand it runs: global keys after the
    /// program name, the rest after the subcommand (so that what the user typed comes later
    /// and wins). Resolves and hands over the secrets of a `sync <source>`.
    pub fn inject(
        &self,
        argv: Vec<OsString>,
        root: &clap::Command,
        secrets: &dyn Fn(&str) -> Option<Secrets>,
    ) -> Result<Vec<OsString>, ConfigError> {
        let (path, end) = subcommand_path(&argv, root);
        let mut leaf = root;
        for name in &path {
            leaf = leaf.find_subcommand(name).expect("the path was found in this tree");
        }
        let globals = self.flags(root, &self.globals, "top level", true)?;
        let mut local = Vec::new();
        if leaf.get_name() != root.get_name() {
            local.extend(self.shared_flags(leaf)?);
            if let [first, source] = &path[..] {
                if first == "sync" {
                    local.extend(self.source_flags(leaf, source, secrets(source).unwrap_or(&[]))?);
                }
            }
        }
        let mut out: Vec<OsString> = Vec::with_capacity(argv.len() + globals.len() + local.len());
        out.push(argv[0].clone());
        out.extend(globals.into_iter().map(OsString::from));
        out.extend(argv[1..end].iter().cloned());
        out.extend(local.into_iter().map(OsString::from));
        out.extend(argv[end..].iter().cloned());
        Ok(out)
    }

    /// The command line `cxlake sync <source>` runs with under this file (for `sync --all`).
    pub fn sync_argv(
        &self,
        root: &clap::Command,
        source: &str,
        extra: &[String],
        secrets: &[(&'static str, &'static str)],
    ) -> Result<Vec<String>, ConfigError> {
        let leaf = root
            .find_subcommand("sync")
            .and_then(|s| s.find_subcommand(source))
            .ok_or_else(|| self.error(format!("[sources.{source}]: there is no source `{source}`")))?;
        let mut argv = vec!["cxlake".to_string()];
        argv.extend(self.flags(root, &self.globals, "top level", true)?);
        argv.extend(["sync".to_string(), source.to_string()]);
        argv.extend(self.shared_flags(leaf)?);
        argv.extend(self.source_flags(leaf, source, secrets)?);
        argv.extend(extra.iter().cloned());
        Ok(argv)
    }

    /// `[destination]` and `[output]` flags that `leaf` takes.
    fn shared_flags(&self, leaf: &clap::Command) -> Result<Vec<String>, ConfigError> {
        let mut destination = self.destination.clone();
        if let Some(url) = destination.remove("url") {
            destination.insert("dest".into(), url);
        }
        let mut flags = self.flags(leaf, &destination, "[destination]", false)?;
        // `schemas_dir` is `--schemas`, for every command that reads declarations.
        let mut output = self.output.clone();
        if let Some(dir) = output.remove("schemas_dir") {
            output.insert("schemas".into(), dir);
        }
        flags.extend(self.flags(leaf, &output, "[output]", false)?);
        Ok(flags)
    }

    /// `[sources.<source>]` flags; its secrets are resolved and handed to the source.
    fn source_flags(
        &self,
        leaf: &clap::Command,
        source: &str,
        secrets: &[(&'static str, &'static str)],
    ) -> Result<Vec<String>, ConfigError> {
        let Some(table) = self.sources.get(source) else { return Ok(Vec::new()) };
        let mut plain = toml::Table::new();
        for (key, value) in table {
            if let Some((_, var)) = secrets.iter().find(|(k, _)| k == key) {
                let resolved = self.secret_reference(&format!("[sources.{source}] {key}"), value, var)?;
                crate::secrets::provide(var, resolved);
            } else {
                plain.insert(key.clone(), value.clone());
            }
        }
        let flags = self.flags(leaf, &plain, &format!("[sources.{source}]"), true)?;
        Ok(flags)
    }

    /// A secret's `${VAR}` reference, resolved; an inline secret is refused.
    fn secret_reference(&self, at: &str, value: &toml::Value, env: &str) -> Result<String, ConfigError> {
        let text = value.as_str().unwrap_or_default();
        let Some(var) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return Err(self.error(format!(
                "{at} is written inline; a secret never goes in the file: write `${{{env}}}` (an environment variable) or use `{}_file = \"/run/secrets/…\"`",
                at.rsplit(' ').next().unwrap_or_default()
            )));
        };
        std::env::var(var).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
            self.error(format!("{at} refers to ${{{var}}}, which is not set in the environment"))
        })
    }

    /// Turns `table`'s keys into flags of `command`. With `strict`, a key that is no flag of it
    /// is an error; otherwise it belongs to other commands and is left out.
    fn flags(
        &self,
        command: &clap::Command,
        table: &toml::Table,
        at: &str,
        strict: bool,
    ) -> Result<Vec<String>, ConfigError> {
        let mut flags = Vec::new();
        for (key, value) in table {
            let long = key.replace('_', "-");
            let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(long.as_str())) else {
                if looks_secret(key) {
                    return Err(self.error(format!(
                        "{at} {key}: secrets never go in the file; use `{key}_file` or the environment"
                    )));
                }
                if strict {
                    let valid: Vec<String> = command
                        .get_arguments()
                        .filter(|a| !a.is_hide_set())
                        .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
                        .filter(|l| l != "help" && l != "config")
                        .collect();
                    return Err(self.error(format!(
                        "{at} has `{key}`, which is not a setting of `{}`; valid: {}",
                        command.get_name(),
                        valid.join(", ")
                    )));
                }
                continue;
            };
            if looks_secret(key) && !key.ends_with("_file") {
                return Err(self.error(format!("{at} {key}: secrets never go in the file; use `{key}_file`")));
            }
            // The environment wins over the file.
            if arg.get_env().is_some_and(|env| std::env::var_os(env).is_some_and(|v| !v.is_empty())) {
                continue;
            }
            let takes_value = arg.get_action().takes_values();
            let text = match value {
                toml::Value::Boolean(true) if !takes_value => {
                    flags.push(format!("--{long}"));
                    continue;
                }
                toml::Value::Boolean(false) if !takes_value => continue,
                toml::Value::String(s) => self.interpolate(&format!("{at} {key}"), s)?,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => {
                    let items: Result<Vec<String>, ConfigError> = items
                        .iter()
                        .map(|v| match v {
                            toml::Value::String(s) => self.interpolate(&format!("{at} {key}"), s),
                            other => Ok(other.to_string()),
                        })
                        .collect();
                    items?.join(",")
                }
                other => {
                    return Err(self.error(format!("{at} {key}: `{other}` is not a value a flag takes")));
                }
            };
            let text = if takes_path(arg) { self.resolve_path(&text) } else { text };
            flags.push(format!("--{long}={text}"));
        }
        Ok(flags)
    }

    /// A relative local path in the file is relative to the file's directory, wherever the
    /// command runs from (cron's, a container's); URLs and absolute paths are kept as written.
    fn resolve_path(&self, text: &str) -> String {
        let path = Path::new(text);
        if text.is_empty() || text.contains("://") || path.is_absolute() {
            return text.to_string();
        }
        match self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(base) => base.join(path).display().to_string(),
            None => text.to_string(),
        }
    }

    /// Where the file sets the flag `--long`: `[output] max_rejects`, for messages about its value.
    pub fn origin_of_flag(&self, long: &str) -> Option<String> {
        let key = long.replace('-', "_");
        let sections =
            [("top level", &self.globals), ("[destination]", &self.destination), ("[output]", &self.output)];
        for (section, table) in sections {
            let aliases: &[&str] = match key.as_str() {
                "dest" => &["url"],
                "schemas" => &["schemas", "schemas_dir"],
                _ => &[],
            };
            if let Some(found) =
                std::iter::once(key.as_str()).chain(aliases.iter().copied()).find(|k| table.contains_key(*k))
            {
                return Some(format!("`{found}` in {section} of {}", self.path.display()));
            }
        }
        self.sources
            .iter()
            .find(|(_, table)| table.contains_key(&key))
            .map(|(source, _)| format!("`{key}` in [sources.{source}] of {}", self.path.display()))
    }

    /// Replaces `${VAR}` references in a plain (non-secret) value.
    fn interpolate(&self, at: &str, text: &str) -> Result<String, ConfigError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                return Err(self.error(format!("{at}: `${{` without a closing `}}`")));
            };
            let var = &rest[start + 2..start + end];
            let value = std::env::var(var).map_err(|_| {
                self.error(format!("{at} refers to ${{{var}}}, which is not set in the environment"))
            })?;
            out.push_str(&value);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Whether `source`'s secret `key` is configured (for `config show`), and from which variable.
    pub fn secret_reference_of(&self, source: &str, key: &str) -> Option<String> {
        self.sources.get(source)?.get(key)?.as_str().map(str::to_string)
    }
}

fn looks_secret(key: &str) -> bool {
    let key = key.strip_suffix("_file").unwrap_or(key);
    SECRET_WORDS.iter().any(|w| key == *w || key.ends_with(&format!("_{w}")))
        && !matches!(key, "key" | "primary_key")
}

/// The subcommands named in `argv` (e.g. `["sync", "saltedcx"]`) and the index just after them.
fn subcommand_path(argv: &[OsString], root: &clap::Command) -> (Vec<String>, usize) {
    let mut command = root;
    let mut path = Vec::new();
    let mut i = 1;
    let mut end = 1;
    while i < argv.len() {
        let arg = argv[i].to_string_lossy();
        if arg == "--" {
            break;
        }
        if let Some(flag) = arg.strip_prefix("--") {
            if !flag.contains('=') {
                let takes_value = command
                    .get_arguments()
                    .chain(root.get_arguments().filter(|a| a.is_global_set()))
                    .find(|a| a.get_long() == Some(flag))
                    .is_some_and(|a| a.get_action().takes_values());
                if takes_value {
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        if arg.starts_with('-') {
            i += 1;
            continue;
        }
        match command.find_subcommand(arg.as_ref()) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                command = sub;
                i += 1;
                end = i;
            }
            None => break,
        }
    }
    (path, end)
}

/// What `config show` prints for one setting.
pub struct Setting {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// The effective settings of a parsed subcommand: every flag with its value and origin.
pub fn effective(command: &clap::Command, matches: &clap::ArgMatches, from_file: &[String]) -> Vec<Setting> {
    let mut settings = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version" | "config") || arg.is_hide_set() {
            continue;
        }
        let Some(source) = matches.value_source(id) else { continue };
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let origin = match source {
            clap::parser::ValueSource::DefaultValue => Origin::Default,
            clap::parser::ValueSource::EnvVariable => Origin::Environment,
            _ if from_file.iter().any(|f| f == long) => Origin::File,
            _ => Origin::CommandLine,
        };
        let value = if values.is_empty() { "true".into() } else { values.join(",") };
        settings.push(Setting { key: long.replace('-', "_"), value, origin });
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_recognised() {
        for key in ["api_key", "api_token", "password", "company_key", "key_passphrase", "api_key_file"] {
            assert!(looks_secret(key), "{key}");
        }
        for key in ["api_url", "lookback_days", "key", "format", "known_hosts"] {
            assert!(!looks_secret(key), "{key}");
        }
    }

    #[test]
    fn tables_must_be_tables_and_unknown_top_level_keys_are_named() {
        let path = Path::new("cxlake.toml");
        let e = ConfigFile::parse(path, "destination = 3").unwrap_err();
        assert!(e.to_string().contains("[destination]"), "{e}");
        let e = ConfigFile::parse(path, "dest = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown top-level key `dest`"), "{e}");
        let ok = ConfigFile::parse(path, "log_format = \"json\"\n[sources.dixa]\n[sources.loop]\n").unwrap();
        assert_eq!(ok.source_names(), ["dixa", "loop"]);
    }
}
