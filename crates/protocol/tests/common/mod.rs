//! Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::PathBuf;

pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(testdata(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Compares `actual` with the golden file `rel`; `UPDATE_GOLDENS=1` rewrites it instead.
pub fn golden(rel: &str, actual: &[u8]) {
    let path = testdata(rel);
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{rel}: {e} (run with UPDATE_GOLDENS=1 to create it)"));
    assert!(
        expected == actual,
        "{rel} drifted (review, then UPDATE_GOLDENS=1 to accept):\nexpected: {}\nactual:   {}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}
