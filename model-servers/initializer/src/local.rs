//! Copying from a local path (a `file://` URI, a mounted PVC).

use std::path::Path;

use crate::InitError;

/// Copies `src` into `dest`: a directory's contents (recursively), or a single file as
/// `dest/<file name>`, like `rclone copy`. Kubernetes' atomic-writer entries (`..data`,
/// `..2024_…`) of ConfigMap/Secret mounts are skipped; symlinks are followed. Returns
/// (files, bytes).
pub fn copy(uri: &str, src: &Path, dest: &Path) -> Result<(usize, u64), InitError> {
    let meta = std::fs::metadata(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => InitError::NotFound {
            uri: uri.to_owned(),
        },
        _ => InitError::io(uri, src, e),
    })?;
    std::fs::create_dir_all(dest).map_err(|e| InitError::io(uri, dest, e))?;
    if meta.is_file() {
        let name = src.file_name().ok_or_else(|| InitError::BadUri {
            uri: uri.to_owned(),
            reason: "no file name".into(),
        })?;
        let to = dest.join(name);
        let bytes = std::fs::copy(src, &to).map_err(|e| InitError::io(uri, &to, e))?;
        return Ok((1, bytes));
    }
    let (mut files, mut bytes) = (0, 0);
    copy_dir(uri, src, dest, &mut files, &mut bytes)?;
    Ok((files, bytes))
}

fn copy_dir(
    uri: &str,
    src: &Path,
    dest: &Path,
    files: &mut usize,
    bytes: &mut u64,
) -> Result<(), InitError> {
    let entries = std::fs::read_dir(src).map_err(|e| InitError::io(uri, src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| InitError::io(uri, src, e))?;
        if entry.file_name().to_string_lossy().starts_with("..") {
            continue;
        }
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let meta = std::fs::metadata(&from).map_err(|e| InitError::io(uri, &from, e))?;
        if meta.is_dir() {
            std::fs::create_dir_all(&to).map_err(|e| InitError::io(uri, &to, e))?;
            copy_dir(uri, &from, &to, files, bytes)?;
        } else {
            *bytes += std::fs::copy(&from, &to).map_err(|e| InitError::io(uri, &to, e))?;
            *files += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_tree_and_single_file() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("model.joblib"), b"m").unwrap();
        std::fs::write(src.path().join("sub/meta.yaml"), b"name: x").unwrap();
        std::fs::create_dir_all(src.path().join("..data")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert_eq!(copy("u", src.path(), dest.path()).unwrap(), (2, 8));
        assert_eq!(
            std::fs::read(dest.path().join("sub/meta.yaml")).unwrap(),
            b"name: x"
        );
        assert!(!dest.path().join("..data").exists());

        let one = tempfile::tempdir().unwrap();
        assert_eq!(
            copy("u", &src.path().join("model.joblib"), one.path()).unwrap(),
            (1, 1)
        );
        assert!(one.path().join("model.joblib").is_file());
    }

    #[test]
    fn missing_source_names_the_uri() {
        let dest = tempfile::tempdir().unwrap();
        let err = copy("file:///nope/iris", Path::new("/nope/iris"), dest.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "file:///nope/iris: nothing there (no object, file or prefix with that name)"
        );
    }
}
