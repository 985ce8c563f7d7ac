//! Payload logging in local mode: where the filter's CloudEvents go.
//!
//! In the cluster a node's `logger.url` names a broker (Seldon's default is
//! `http://default-broker`), which does not exist on one machine. So `up` sends every payload
//! log of the graph either to `--logger-url` (any HTTP endpoint taking CloudEvents in binary
//! mode, e.g. a local Knative broker or a request bin) or, by default, to its own sink: a
//! small server on 127.0.0.1 that appends each event as one JSON line to
//! `<workdir>/payload-logs.jsonl`. The graph's `logger.mode` (all, request, response) decides
//! what is logged, exactly as in the cluster; only the destination changes.
//!
//! A line: `{"ce": {"ce-id": …, "ce-type": "io.seldon.serving.inference.request", …},
//! "contentType": "application/json", "data": <the JSON payload>}`; a payload that is not
//! JSON is kept as `"dataBase64"`.

use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::LocalError;

/// The Envoy cluster of the payload-log destination.
pub const CLUSTER: &str = "payload-logger";

/// The sink's file in the workdir.
pub const FILE: &str = "payload-logs.jsonl";

/// Where payload logs are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Request path of each event.
    pub path: String,
}

/// Why a `--logger-url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "--logger-url {url:?}: {reason} (give an http:// URL taking CloudEvents, e.g. http://127.0.0.1:8080/, or leave it out to log to payload-logs.jsonl in the workdir)"
)]
pub struct LogTargetError {
    pub url: String,
    pub reason: String,
}

impl LogTarget {
    /// The built-in sink on `port`.
    pub fn sink(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
        }
    }

    /// Parses `--logger-url`: `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, LogTargetError> {
        let u = crate::http_url::parse(url).map_err(|reason| LogTargetError {
            url: url.to_string(),
            reason,
        })?;
        let path = match u.query {
            Some(q) => format!("{}?{q}", u.path),
            None => u.path,
        };
        Ok(Self {
            host: u.host,
            port: u.port,
            path,
        })
    }

    /// The `:authority` of each event's POST.
    pub fn authority(&self) -> String {
        crate::http_url::authority(&self.host, self.port)
    }
}

/// The built-in sink: a task on `up`'s runtime, stopped on drop.
#[derive(Debug)]
pub struct PayloadSink {
    file: PathBuf,
    events: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PayloadSink {
    /// Serves on `listener` (bound by the caller before the plan, so the plan knows the port;
    /// must be called inside a tokio runtime), appending to `file` (created, or emptied).
    pub fn serve(listener: std::net::TcpListener, file: &Path) -> Result<Self, LocalError> {
        let io = |action: &'static str, path: PathBuf| {
            move |source| LocalError::Io {
                action,
                path,
                source,
            }
        };
        let out = std::fs::File::create(file).map_err(io("creating", file.to_owned()))?;
        let addr = PathBuf::from("127.0.0.1");
        listener
            .set_nonblocking(true)
            .map_err(io("serving payload logs on", addr.clone()))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(io("serving payload logs on", addr))?;
        let events = Arc::new(AtomicU64::new(0));
        let state = Arc::new(Sink {
            out: Mutex::new(out),
            events: events.clone(),
        });
        Ok(Self {
            file: file.to_owned(),
            events,
            task: tokio::spawn(accept(listener, state)),
        })
    }

    /// The file events are appended to.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

impl Drop for PayloadSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Sink {
    out: Mutex<std::fs::File>,
    events: Arc<AtomicU64>,
}

async fn accept(listener: tokio::net::TcpListener, sink: Arc<Sink>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sink = sink.clone();
                async move { Ok::<_, Infallible>(receive(&sink, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn failure(status: u16, info: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({"status": {"code": status, "info": info, "status": "FAILURE"}}),
    )
}

async fn receive(sink: &Sink, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::POST {
        return failure(405, "the payload-log sink takes CloudEvents by POST");
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return failure(400, &format!("reading the event: {e}")),
    };
    let line = event_line(&parts.headers, &body);
    let written = sink.out.lock().map_err(|_| ()).and_then(|mut f| {
        writeln!(f, "{line}")
            .and_then(|()| f.flush())
            .map_err(|_| ())
    });
    if written.is_err() {
        return failure(500, "writing payload-logs.jsonl failed");
    }
    sink.events.fetch_add(1, Ordering::Relaxed);
    reply(200, json!({}))
}

/// One line of the file for an event with these headers and body.
pub fn event_line(headers: &hyper::HeaderMap, body: &[u8]) -> String {
    let ce: Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("ce-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut line = json!({"ce": ce, "contentType": content_type});
    match serde_json::from_slice::<Value>(body) {
        Ok(data) => line["data"] = data,
        Err(_) => {
            line["dataBase64"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(body));
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_urls_are_http_with_a_path() {
        assert_eq!(
            LogTarget::parse("http://127.0.0.1:8080/events?x=1").unwrap(),
            LogTarget {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/events?x=1".into()
            }
        );
        let t = LogTarget::parse("http://broker.local").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        assert_eq!(LogTarget::sink(9).authority(), "127.0.0.1:9");
        for (bad, why) in [
            ("https://x:1", "only http"),
            ("default-broker", "relative URL"),
            ("http://u:p@x:1/", "credentials"),
        ] {
            let e = LogTarget::parse(bad).unwrap_err();
            assert!(e.reason.contains(why), "{bad}: {e}");
            assert!(e.to_string().contains("payload-logs.jsonl"), "{e}");
        }
    }

    #[test]
    fn an_event_keeps_its_cloud_event_headers_and_json_data() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "ce-type",
            "io.seldon.serving.inference.request".parse().unwrap(),
        );
        h.insert("ce-requestid", "p1".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("seldon-puid", "p1".parse().unwrap());
        let line: Value =
            serde_json::from_str(&event_line(&h, br#"{"data":{"ndarray":[[1]]}}"#)).unwrap();
        assert_eq!(
            line,
            json!({
                "ce": {"ce-type": "io.seldon.serving.inference.request", "ce-requestid": "p1"},
                "contentType": "application/json",
                "data": {"data": {"ndarray": [[1]]}},
            })
        );
        // not JSON: kept byte for byte
        let line: Value = serde_json::from_str(&event_line(&h, b"\x00\x01")).unwrap();
        assert_eq!(line["dataBase64"], "AAE=");
        assert!(line.get("data").is_none());
    }

    #[tokio::test]
    async fn the_sink_appends_one_line_per_post_and_refuses_other_methods() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = PayloadSink::serve(listener, &file).unwrap();
        let http = reqwest::Client::new();
        for n in 0..2 {
            let r = http
                .post(format!("http://127.0.0.1:{port}/"))
                .header("ce-id", format!("e{n}"))
                .header("content-type", "application/json")
                .body(format!(r#"{{"n":{n}}}"#))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"]["code"], 405);
        assert_eq!(sink.events(), 2);
        let lines: Vec<Value> = std::fs::read_to_string(sink.file())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["ce"]["ce-id"], "e1");
        assert_eq!(lines[1]["data"], json!({"n": 1}));
        drop(sink);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "stopped on drop"
        );
    }
}
