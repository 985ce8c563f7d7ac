//! Google Cloud Storage as a model source, read anonymously through the JSON API (public
//! buckets such as `gs://seldon-models`): `objects.list` + `objects.get?alt=media`.

use std::path::Path;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use url::Url;

use crate::{InitError, fetch, paths};

/// Default API endpoint; `STORAGE_EMULATOR_HOST` (the variable Google's client libraries
/// read for emulators) overrides it.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

const OBJECT_NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The endpoint from the environment.
pub fn endpoint_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Url, String> {
    let raw = env("STORAGE_EMULATOR_HOST")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
    let raw = raw.trim().trim_end_matches('/');
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    Url::parse(&with_scheme).map_err(|e| format!("STORAGE_EMULATOR_HOST {raw:?}: {e}"))
}

/// One page of `objects.list`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct ListPage {
    #[serde(default)]
    pub items: Vec<Object>,
    #[serde(rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

/// An object in a listing.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Object {
    pub name: String,
}

/// Parses an `objects.list` JSON body.
pub fn parse_list(body: &str) -> Result<ListPage, String> {
    serde_json::from_str(body).map_err(|e| format!("not an objects.list answer: {e}"))
}

/// `message` of a GCS JSON error body, or the body (shortened).
pub fn error_reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| fetch::shorten(body))
}

/// The `objects.list` URL for one page.
pub fn list_url(endpoint: &Url, bucket: &str, prefix: &str, page: Option<&str>) -> Url {
    let mut url = endpoint.clone();
    url.set_path(&format!(
        "/storage/v1/b/{}/o",
        utf8_percent_encode(bucket, OBJECT_NAME)
    ));
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("prefix", prefix);
        q.append_pair("fields", "items(name),nextPageToken");
        if let Some(p) = page {
            q.append_pair("pageToken", p);
        }
    }
    url
}

/// The media download URL of one object.
pub fn object_url(endpoint: &Url, bucket: &str, name: &str) -> Url {
    let mut url = endpoint.clone();
    url.set_path(&format!(
        "/storage/v1/b/{}/o/{}",
        utf8_percent_encode(bucket, OBJECT_NAME),
        utf8_percent_encode(name, OBJECT_NAME)
    ));
    url.set_query(Some("alt=media"));
    url
}

/// Copies every object under `gs://bucket/prefix` into `dest` (or the single object
/// `prefix`). Returns (files, bytes).
pub async fn copy(
    http: &reqwest::Client,
    endpoint: &Url,
    uri: &str,
    bucket: &str,
    prefix: &str,
    dest: &Path,
) -> Result<(usize, u64), InitError> {
    let mut keys = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let body = fetch::text(
            uri,
            http.get(list_url(endpoint, bucket, prefix, page.as_deref())),
            error_reason,
        )
        .await?;
        let list = parse_list(&body).map_err(|reason| InitError::Listing {
            uri: uri.to_owned(),
            reason,
        })?;
        keys.extend(list.items.into_iter().map(|o| o.name));
        match list.next_page_token {
            Some(t) => page = Some(t),
            None => break,
        }
    }
    let plan = paths::plan(prefix, keys).map_err(|(name, reason)| InitError::UnsafeName {
        uri: uri.to_owned(),
        name,
        reason,
    })?;
    if plan.is_empty() {
        return Err(InitError::NotFound {
            uri: uri.to_owned(),
        });
    }
    let (mut files, mut bytes) = (0, 0);
    for (name, rel) in plan {
        let object = format!("gs://{bucket}/{name}");
        bytes += fetch::to_file(
            &object,
            http.get(object_url(endpoint, bucket, &name)),
            &dest.join(rel),
            error_reason,
        )
        .await?;
        files += 1;
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ep = endpoint_from_env(&|_| None).unwrap();
        assert_eq!(
            list_url(&ep, "seldon-models", "sklearn/iris/", Some("t 1")).as_str(),
            "https://storage.googleapis.com/storage/v1/b/seldon-models/o?prefix=sklearn%2Firis%2F&fields=items%28name%29%2CnextPageToken&pageToken=t+1"
        );
        assert_eq!(
            object_url(&ep, "seldon-models", "sklearn/iris/model.joblib").as_str(),
            "https://storage.googleapis.com/storage/v1/b/seldon-models/o/sklearn%2Firis%2Fmodel.joblib?alt=media"
        );
        let emu =
            endpoint_from_env(&|k| (k == "STORAGE_EMULATOR_HOST").then(|| "localhost:4443".into()))
                .unwrap();
        assert_eq!(emu.as_str(), "http://localhost:4443/");
    }

    #[test]
    fn list_bodies() {
        let page = parse_list(
            r#"{"kind":"storage#objects","items":[{"name":"a/b"}],"nextPageToken":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            page,
            ListPage {
                items: vec![Object { name: "a/b".into() }],
                next_page_token: Some("x".into())
            }
        );
        assert_eq!(parse_list("{}").unwrap().items, vec![]);
        assert!(parse_list("[1]").unwrap_err().contains("objects.list"));
        assert_eq!(
            error_reason(
                r#"{"error":{"code":404,"message":"The specified bucket does not exist."}}"#
            ),
            "The specified bucket does not exist."
        );
        assert!(
            endpoint_from_env(&|_| Some("http://[x".into()))
                .unwrap_err()
                .contains("STORAGE_EMULATOR_HOST")
        );
    }
}
