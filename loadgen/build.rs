//! Embeds the SHA-1 of this crate's own source files, for the detail log's
//! `loadgen_file_sha1` key. LoadGen's `version_generator.py` hashes its
//! sources at build time the same way (`"/<path>": "<sha1 hex>"`, sorted by
//! path), so a log names the exact code that produced it: here, this crate's
//! `Cargo.toml`, `build.rs` and every file under `src/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut files = vec![root.join("Cargo.toml"), root.join("build.rs")];
    files_under(&root.join("src"), &mut files)?;
    let mut entries = Vec::with_capacity(files.len());
    for path in &files {
        let relative = path.strip_prefix(&root)?;
        // Forward slashes on every platform, like LoadGen's "/bindings/c_api.cc".
        let name: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let digest = Sha1::digest(std::fs::read(path)?);
        let mut hex = String::with_capacity(40);
        for byte in digest {
            write!(hex, "{byte:02x}")?;
        }
        entries.push((format!("/{}", name.join("/")), hex));
    }
    entries.sort();
    let mut code = String::from(
        "/// `(\"/<path>\", \"<sha1 hex>\")` of every source file of this crate, sorted by path.\n\
         pub const FILE_SHA1: &[(&str, &str)] = &[\n",
    );
    for (name, hex) in &entries {
        writeln!(code, "    ({name:?}, {hex:?}),")?;
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("file_sha1.rs");
    std::fs::write(out, code)?;
    println!("cargo::rerun-if-changed=Cargo.toml");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src");
    Ok(())
}
