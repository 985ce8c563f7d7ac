//! The HTTP edge shared by every remote source: send, check the status, stream to a file.

use std::path::Path;

use tokio::io::AsyncWriteExt;

use crate::InitError;

/// At most 300 characters of `body`, on one line.
pub fn shorten(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

async fn send(
    uri: &str,
    req: reqwest::RequestBuilder,
    reason: fn(&str) -> String,
) -> Result<reqwest::Response, InitError> {
    let resp = req.send().await.map_err(|source| InitError::Request {
        uri: uri.to_owned(),
        source,
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::NOT_FOUND && body.is_empty() {
        return Err(InitError::NotFound {
            uri: uri.to_owned(),
        });
    }
    Err(InitError::Status {
        uri: uri.to_owned(),
        status: status.as_u16(),
        reason: reason(&body),
    })
}

/// Streams a successful response into `path` (through `.<name>.part`, renamed at the end so
/// a crash never leaves a half file under the real name). Returns the byte count.
pub async fn to_file(
    uri: &str,
    req: reqwest::RequestBuilder,
    path: &Path,
    reason: fn(&str) -> String,
) -> Result<u64, InitError> {
    let mut resp = send(uri, req, reason).await?;
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| InitError::io(uri, dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = dir.join(format!(".{name}.part"));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| InitError::io(uri, &part, e))?;
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|source| InitError::Request {
        uri: uri.to_owned(),
        source,
    })? {
        file.write_all(&chunk)
            .await
            .map_err(|e| InitError::io(uri, &part, e))?;
        bytes += chunk.len() as u64;
    }
    file.flush()
        .await
        .map_err(|e| InitError::io(uri, &part, e))?;
    drop(file);
    tokio::fs::rename(&part, path)
        .await
        .map_err(|e| InitError::io(uri, path, e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_long_bodies() {
        assert_eq!(shorten("a\n  b"), "a b");
        let long = "x".repeat(400);
        let s = shorten(&long);
        assert_eq!(s.chars().count(), 301);
        assert!(s.ends_with('…'));
    }
}
