//! Secrets handed over by the config file: a `${VAR}` reference is resolved once, at start, and
//! kept here under the environment variable name the source reads, so the config never has to
//! put a secret on a command line (visible in `ps`) or change the process environment.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

fn provided() -> &'static Mutex<HashMap<String, String>> {
    static PROVIDED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    PROVIDED.get_or_init(Default::default)
}

/// Makes `value` what [`var`] returns for `name`.
pub fn provide(name: &str, value: String) {
    provided().lock().expect("secrets").insert(name.to_string(), value);
}

/// A secret by its environment variable's name: as provided by the config file, else the environment.
pub fn var(name: &str) -> Option<String> {
    let provided = provided().lock().expect("secrets").get(name).cloned();
    provided.or_else(|| std::env::var(name).ok())
}
