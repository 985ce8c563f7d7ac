//! An open-loop, fixed-rate load generator whose unit of work is a *chain*: one or more HTTP
//! calls in sequence, each sending the previous call's response body. A chain of one is an
//! ordinary request; a chain of three is "the client orchestrates the graph itself".
//!
//! Send times are fixed in advance (`start + i / rate`) by a ticker thread that sleeps with
//! the OS timer (tokio's wheel ticks in whole milliseconds, too coarse at 1000 rps), and each
//! latency runs from the *scheduled* time to the last response byte, so a slow response
//! delays no later measurement (corrected for coordinated omission, like oha's
//! `--latency-correction` and wrk2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

/// One call of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub addr: SocketAddr,
    pub path: String,
}

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Chains per second.
    pub rate: u32,
    pub duration: Duration,
    /// Concurrent workers; each holds one keep-alive connection per call of the chain.
    pub connections: usize,
    /// The first call's body.
    pub body: Bytes,
}

/// Raw samples of one run.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Scheduled-to-done latency of each successful chain, µs.
    pub latencies_us: Vec<u64>,
    pub errors: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load spec: {0}")]
    Spec(&'static str),
    #[error("connecting to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP handshake with {addr}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
}

/// What went wrong with one call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{path}: {source}")]
    Http {
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{path}: status {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Setup(#[from] LoadError),
}

/// A keep-alive HTTP/1.1 connection to one address.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self, LoadError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| LoadError::Connect { addr, source })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| LoadError::Handshake { addr, source })?;
        tokio::spawn(async move {
            // Ends when the peer closes; the next send on `sender` then fails and reconnects.
            let _ = conn.await;
        });
        Ok(Self { addr, sender })
    }

    /// POSTs `body` as JSON to `path`; a non-2xx answer is an error.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Bytes, CallError> {
        if self.sender.ready().await.is_err() {
            *self = Self::open(self.addr).await?;
        }
        let http = |source| CallError::Http {
            path: path.to_owned(),
            source,
        };
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .unwrap_or_default();
        let resp = self.sender.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(http)?.to_bytes();
        if !status.is_success() {
            return Err(CallError::Status {
                path: path.to_owned(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes)
    }
}

/// Runs `chain` once over `conns` (one per call), feeding each response to the next call.
pub async fn run_chain(
    chain: &[Call],
    conns: &mut [Conn],
    body: Bytes,
) -> Result<Bytes, CallError> {
    let mut body = body;
    for (call, conn) in chain.iter().zip(conns.iter_mut()) {
        body = conn.post(&call.path, body).await?;
    }
    Ok(body)
}

/// Opens one connection per call of `chain`.
pub async fn connect(chain: &[Call]) -> Result<Vec<Conn>, LoadError> {
    let mut conns = Vec::with_capacity(chain.len());
    for call in chain {
        conns.push(Conn::open(call.addr).await?);
    }
    Ok(conns)
}

/// Drives `chain` at `spec.rate` for `spec.duration` (open loop) and collects latencies.
pub async fn run(chain: &[Call], spec: &LoadSpec) -> Result<LoadResult, LoadError> {
    if chain.is_empty() {
        return Err(LoadError::Spec("empty chain"));
    }
    if spec.rate == 0 || spec.connections == 0 {
        return Err(LoadError::Spec("rate and connections must be > 0"));
    }
    let mut workers = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        workers.push(connect(chain).await?);
    }
    let total = (spec.duration.as_secs_f64() * f64::from(spec.rate)).round() as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(spec.rate));
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(20);
    let ticker = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send(at).is_err() {
                break;
            }
        }
    });

    let mut tasks = tokio::task::JoinSet::new();
    for mut conns in workers {
        let rx = Arc::clone(&rx);
        let chain = chain.to_vec();
        let body = spec.body.clone();
        tasks.spawn(async move {
            let mut out = LoadResult::default();
            loop {
                let Some(at) = rx.lock().await.recv().await else {
                    break;
                };
                match run_chain(&chain, &mut conns, body.clone()).await {
                    Ok(_) => out.latencies_us.push(at.elapsed().as_micros() as u64),
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            out
        });
    }
    let mut result = LoadResult::default();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(part) = joined {
            result.latencies_us.extend(part.latencies_us);
            result.errors += part.errors;
            if result.first_error.is_none() {
                result.first_error = part.first_error;
            }
        }
    }
    let _ = ticker.join();
    result.elapsed = start.elapsed();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_chain_is_rejected() {
        let spec = LoadSpec {
            rate: 10,
            duration: Duration::from_millis(10),
            connections: 1,
            body: Bytes::new(),
        };
        assert!(matches!(run(&[], &spec).await, Err(LoadError::Spec(_))));
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let addr: SocketAddr = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l.local_addr().unwrap(),
            Err(e) => panic!("{e}"),
        }; // the listener is dropped here: nothing listens on addr any more
        let chain = [Call {
            addr,
            path: "/".into(),
        }];
        let spec = LoadSpec {
            rate: 10,
            duration: Duration::from_millis(10),
            connections: 1,
            body: Bytes::new(),
        };
        assert!(matches!(
            run(&chain, &spec).await,
            Err(LoadError::Connect { .. })
        ));
    }
}
