//! Gives the library the identity of its build, `GROWTH_BUILD`: a hash of its sources and of
//! the dependency lock. A manifest's fingerprint includes it, so `--resume` reruns what a new
//! build would publish differently, though the crate's version number did not change.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn sources(folder: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(folder).unwrap_or_else(|e| panic!("reading {}: {e}", folder.display()));
    for entry in entries {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn main() {
    let mut files = vec![PathBuf::from("Cargo.toml"), PathBuf::from("Cargo.lock")];
    sources(Path::new("jobs"), &mut files);
    files.sort();
    let mut hash = Sha256::new();
    for file in &files {
        hash.update(file.to_string_lossy().as_bytes());
        hash.update(std::fs::read(file).unwrap_or_default());
    }
    let digest = format!("{:x}", hash.finalize());
    println!("cargo:rustc-env=GROWTH_BUILD={}", &digest[..16]);
    for watched in ["jobs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={watched}");
    }
}
