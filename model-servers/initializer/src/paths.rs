//! Where a listed object lands under the destination (pure): no escaping it.

use std::path::{Component, Path, PathBuf};

/// The path of object `name` relative to the destination, given the listed `prefix`
/// (without trailing `/`). `Ok(None)` for directory markers (`dir/`).
pub fn object_path(prefix: &str, name: &str) -> Result<Option<PathBuf>, &'static str> {
    let rel = if prefix.is_empty() {
        name
    } else {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or("outside the listed prefix")?
    };
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(None);
    }
    relative(rel).map(Some)
}

/// Which listed objects to copy, and where: everything under `prefix/`, or — when nothing
/// is — the single object named `prefix` (as `dest/<last segment>`, like `rclone copy`).
/// Siblings that merely share the prefix (`iris2/…` for `iris`) are skipped. `Err` names
/// the object and why it is refused.
pub fn plan(
    prefix: &str,
    keys: Vec<String>,
) -> Result<Vec<(String, PathBuf)>, (String, &'static str)> {
    let mut out = Vec::new();
    let mut exact = None;
    for key in keys {
        if !prefix.is_empty() && !key.strip_prefix(prefix).is_some_and(|r| r.starts_with('/')) {
            if key == prefix {
                exact = Some(key);
            }
            continue;
        }
        match object_path(prefix, &key) {
            Ok(Some(rel)) => out.push((key, rel)),
            Ok(None) => {}
            Err(reason) => return Err((key, reason)),
        }
    }
    if out.is_empty()
        && let Some(key) = exact
    {
        let name = key.rsplit('/').next().unwrap_or(&key);
        let rel = relative(name).map_err(|reason| (key.clone(), reason))?;
        out.push((key, rel));
    }
    Ok(out)
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
        assert_eq!(
            object_path("iris", "iris/model.joblib").unwrap(),
            Some("model.joblib".into())
        );
        assert_eq!(
            object_path("iris", "iris/sub/a.txt").unwrap(),
            Some("sub/a.txt".into())
        );
        assert_eq!(
            object_path("", "model.bst").unwrap(),
            Some("model.bst".into())
        );
        assert_eq!(object_path("iris", "iris/sub/").unwrap(), None);
    }

    #[test]
    fn plans_prefix_or_single_object() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            plan(
                "iris",
                keys(&["iris", "iris/model.joblib", "iris2/x", "iris.txt"])
            )
            .unwrap(),
            vec![(
                "iris/model.joblib".to_string(),
                PathBuf::from("model.joblib")
            )]
        );
        assert_eq!(
            plan("m/model.bst", keys(&["m/model.bst", "m/model.bst.bak"])).unwrap(),
            vec![("m/model.bst".to_string(), PathBuf::from("model.bst"))]
        );
        assert_eq!(plan("iris", keys(&["iris2/x"])).unwrap(), vec![]);
        assert_eq!(
            plan("iris", keys(&["iris/../x"])).unwrap_err(),
            ("iris/../x".to_string(), "`..` in the name")
        );
    }

    #[test]
    fn refuses_escapes() {
        assert_eq!(
            object_path("iris", "iris/../../etc/passwd"),
            Err("`..` in the name")
        );
        assert_eq!(
            object_path("iris", "iris2/x"),
            Err("outside the listed prefix")
        );
        assert_eq!(object_path("", "/etc/passwd"), Err("absolute name"));
        assert_eq!(relative("a\\..\\b"), Err("backslash or NUL in the name"));
        assert_eq!(relative("./."), Err("empty name"));
    }
}
