//! The collector the traced graph listener (scenario (d)) exports to: a small hyper server on
//! 127.0.0.1 that answers every request 200 with an empty body (an empty protobuf message is
//! a valid `ExportTraceServiceResponse`) and counts requests and body bytes. It decodes
//! nothing: the bench measures what exporting costs Envoy, not a collector.
//!
//! The accept task owns every connection task (a `JoinSet`), so dropping the sink stops them
//! all.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// A running sink; stops on drop.
#[derive(Debug)]
pub struct Sink {
    port: u16,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Binds a free port on 127.0.0.1 and serves HTTP/1.1 until dropped.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counts = Arc::clone(&shared);
                conns.spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let counts = Arc::clone(&counts);
                        async move {
                            let len = match req.into_body().collect().await {
                                Ok(b) => b.to_bytes().len() as u64,
                                Err(_) => 0,
                            };
                            counts.requests.fetch_add(1, Ordering::Relaxed);
                            counts.bytes.fetch_add(len, Ordering::Relaxed);
                            let answer = Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()));
                            Ok::<_, Infallible>(answer.unwrap_or_default())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { port, counts, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    /// Request body bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.counts.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_post_gets_200_with_an_empty_body_and_is_counted() {
        let sink = Sink::start().await.unwrap();
        assert_eq!((sink.requests(), sink.bytes()), (0, 0));
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/v1/traces", sink.port());
        for body in [&b"abcde"[..], &b"xyz"[..]] {
            let r = http
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.headers()["content-type"],
                "application/x-protobuf",
                "OTLP/HTTP protobuf answer"
            );
            assert!(r.bytes().await.unwrap().is_empty());
        }
        assert_eq!(sink.requests(), 2);
        assert_eq!(sink.bytes(), 8);
    }

    #[tokio::test]
    async fn a_dropped_sink_refuses_connections() {
        let sink = Sink::start().await.unwrap();
        let port = sink.port();
        drop(sink);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/traces"))
            .body("x")
            .send()
            .await;
        assert!(r.is_err(), "the sink still answered after drop: {r:?}");
    }
}
