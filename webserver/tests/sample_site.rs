//! The bundled sample site (`www/`) is complete and its benchmark files are exactly
//! what the deterministic generator below produces.
//!
//! Regenerate the files with `REGENERATE_SAMPLE_SITE=1 cargo test -p webserver --test
//! sample_site`.

use std::path::PathBuf;

/// The benchmark files: name and size.
const FILES: [(&str, usize); 3] = [
    ("1k.txt", 1024),
    ("64k.txt", 64 * 1024),
    ("1m.txt", 1024 * 1024),
];

/// `size` bytes (a multiple of 64) of 64-byte numbered lines of a rotating alphabet.
fn generate(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    assert_eq!(size % 64, 0);
    let mut out = Vec::with_capacity(size);
    for line in 0..size / 64 {
        out.extend_from_slice(format!("{line:07} ").as_bytes());
        out.extend((0..55).map(|i| ALPHABET[(line + i) % ALPHABET.len()]));
        out.push(b'\n');
    }
    out
}

fn www() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www")
}

#[test]
fn benchmark_files_match_the_generator() {
    let dir = www().join("files");
    for (name, size) in FILES {
        let want = generate(size);
        assert_eq!(want.len(), size);
        let path = dir.join(name);
        if std::env::var_os("REGENERATE_SAMPLE_SITE").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            have == want,
            "{} differs from the generator",
            path.display()
        );
    }
}

#[test]
fn site_has_an_index_a_stylesheet_and_no_index_in_files() {
    let index = std::fs::read_to_string(www().join("index.html")).unwrap();
    assert!(index.starts_with("<!DOCTYPE html>"));
    assert!(index.contains("/style.css"));
    for (name, _) in FILES {
        assert!(
            index.contains(&format!("/files/{name}")),
            "index links {name}"
        );
    }
    assert!(www().join("style.css").is_file());
    assert!(!www().join("files/index.html").exists());
}
