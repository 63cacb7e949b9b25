//! Embeds every `schemas/<source>/<dataset>.toml` into the binary: the dataset list comes from
//! the schema files alone, so a new source or dataset is a new file, never a new line of code.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    for source in std::fs::read_dir(&root).expect("schemas/ exists") {
        let source = source.expect("schemas/ is readable").path();
        if !source.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", source.display());
        for file in std::fs::read_dir(&source).expect("schema folder is readable") {
            let path = file.expect("schema folder is readable").path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                println!("cargo:rerun-if-changed={}", path.display());
                entries.push(path);
            }
        }
    }
    entries.sort();
    let mut code = String::from("&[\n");
    for path in entries {
        let relative = path.strip_prefix(&root).expect("under schemas/").to_string_lossy().replace('\\', "/");
        writeln!(code, "    ({relative:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_schemas.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
