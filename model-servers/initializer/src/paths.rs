//! Where a listed object lands under the destination (pure): no escaping it.

use std::path::{Component, Path, PathBuf};

/// The path of object `name` relative to the destination, given the listed `prefix`
/// (without trailing `/`). `Ok(None)` for directory markers (`dir/`).
pub fn object_path(prefix: &str, name: &str) -> Result<Option<PathBuf>, &'static str> {
    let rel = if prefix.is_empty() {
        name
    } else {
        name.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).ok_or("outside the listed prefix")?
    };
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(None);
    }
    relative(rel).map(Some)
}

/// `rel` as a path that stays below the directory it is joined to.
pub fn relative(rel: &str) -> Result<PathBuf, &'static str> {
    if rel.contains('\\') || rel.contains('\0') {
        return Err("backslash or NUL in the name");
    }
    let path = Path::new(rel);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in the name"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute name"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("empty name");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_prefix() {
        assert_eq!(object_path("iris", "iris/model.joblib").unwrap(), Some("model.joblib".into()));
        assert_eq!(object_path("iris", "iris/sub/a.txt").unwrap(), Some("sub/a.txt".into()));
        assert_eq!(object_path("", "model.bst").unwrap(), Some("model.bst".into()));
        assert_eq!(object_path("iris", "iris/sub/").unwrap(), None);
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(object_path("iris", "iris/../../etc/passwd"), Err("`..` in the name"));
        assert_eq!(object_path("iris", "iris2/x"), Err("outside the listed prefix"));
        assert_eq!(object_path("", "/etc/passwd"), Err("absolute name"));
        assert_eq!(relative("a\\..\\b"), Err("backslash or NUL in the name"));
        assert_eq!(relative("./."), Err("empty name"));
    }
}
