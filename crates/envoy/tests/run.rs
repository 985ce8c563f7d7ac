//! A real Envoy (the binary of `scripts/setup.sh`) in front of a tiny tokio HTTP server.
//!
//! These tests fail, rather than skip, when Envoy is missing: the message says to run
//! `scripts/setup.sh`.

use std::path::PathBuf;
use std::time::Duration;

use seldon_envoy::{
    Cluster, Envoy, EnvoyConfig, EnvoyError, GRAPH_FALLBACK_BODY, GRAPH_FALLBACK_STATUS, Listener,
    ListenerKind, envoy_binary, free_port,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn require_envoy() {
    if let Err(e) = envoy_binary() {
        panic!("these tests need a real Envoy: {e}");
    }
}

/// Answers every request with `backend saw <method> <path>`, one request per connection.
async fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let line = head.lines().next().unwrap_or_default();
                let mut parts = line.split(' ');
                let body = format!(
                    "backend saw {} {}",
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default()
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

fn route_config(admin: u16, listener: u16, backend: u16) -> EnvoyConfig {
    let mut config = EnvoyConfig::new(admin);
    config.listeners.push(Listener {
        name: "baseline".into(),
        port: listener,
        kind: ListenerKind::Route {
            cluster: "backend".into(),
            prefix_rewrite: Some("/predict/".into()),
            timeout: Some(Duration::from_secs(5)),
        },
    });
    config
        .clusters
        .push(Cluster::http1("backend", "127.0.0.1", backend));
    config
}

#[tokio::test]
async fn route_listener_proxies_to_the_backend_with_the_prefix_rewritten() {
    require_envoy();
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let config = route_config(free_port().unwrap(), free_port().unwrap(), backend);
    let envoy = Envoy::start(config, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let url = format!("{}/api/v1.0", envoy.listener_url("baseline").unwrap());
    let resp = reqwest::Client::new()
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        "backend saw POST /predict/api/v1.0"
    );

    assert_eq!(
        envoy
            .stat("cluster.backend.upstream_rq_total")
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(envoy.stat("no.such.stat").await.unwrap(), None);
    assert!(
        envoy
            .stats()
            .await
            .unwrap()
            .contains("http.baseline.downstream_rq_total: 1")
    );
    assert!(
        matches!(envoy.listener_url("nope"), Err(EnvoyError::UnknownListener(n)) if n == "nope")
    );
    assert!(envoy.admin_get("/no-such-admin-page").await.is_err());

    // Drop kills Envoy: the admin port stops answering.
    let admin = envoy.admin_url();
    drop(envoy);
    assert!(reqwest::get(format!("{admin}/ready")).await.is_err());
}

#[tokio::test]
async fn start_reports_an_early_exit_with_the_log_tail() {
    require_envoy();
    // Hold the listener's port so Envoy cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = route_config(free_port().unwrap(), port, 1);
    let err = Envoy::start(config, dir.path()).await.unwrap_err();
    let EnvoyError::Exited { tail, .. } = &err else {
        panic!("expected Exited, got {err}")
    };
    assert!(
        tail.contains("Address already in use") || tail.contains("cannot bind"),
        "{tail}"
    );
}

#[tokio::test]
async fn start_rejects_an_invalid_config_before_spawning() {
    let dir = tempfile::tempdir().unwrap();
    let config = route_config(free_port().unwrap(), free_port().unwrap(), 0);
    let err = Envoy::start(config, dir.path()).await.unwrap_err();
    assert!(matches!(err, EnvoyError::Config(_)), "{err}");
    assert!(
        !dir.path().join("envoy.log").exists(),
        "nothing may be spawned"
    );
}

/// The smallest proxy-wasm module Envoy accepts: ABI version, allocator, and ok from
/// vm start and configure. With `answer`, it replies 200 `graph answered` from request
/// headers and pauses, as the graph filter does once a graph has run.
fn wasm_module(dir: &std::path::Path, answer: bool) -> PathBuf {
    let on_headers = if answer {
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $send (i32.const 200) (i32.const 0) (i32.const 0)
                                (i32.const 16) (i32.const 14) (i32.const 0) (i32.const 0)
                                (i32.const -1)))
             (i32.const 1))"#
    } else {
        ""
    };
    let wat = format!(
        r#"(module
  (import "env" "proxy_send_local_response"
    (func $send (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "graph answered")
  (global $next (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (i32.add (local.get $size) (i32.const 8))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  {on_headers})"#
    );
    let path = dir.join(if answer {
        "answer.wasm"
    } else {
        "passthrough.wasm"
    });
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

fn graph_config(admin: u16, listener: u16, wasm_path: PathBuf) -> EnvoyConfig {
    let mut config = EnvoyConfig::new(admin);
    config.listeners.push(Listener {
        name: "graph".into(),
        port: listener,
        kind: ListenerKind::Graph {
            wasm_path,
            plugin_config_json: r#"{"any":"json"}"#.into(),
            vm_id: "test".into(),
        },
    });
    config
}

#[tokio::test]
async fn graph_listener_fallback_route_is_a_counted_599_tripwire() {
    require_envoy();
    let dir = tempfile::tempdir().unwrap();
    let wasm = wasm_module(dir.path(), false);
    let config = graph_config(free_port().unwrap(), free_port().unwrap(), wasm);
    let envoy = Envoy::start(config, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let url = format!(
        "{}/api/v1.0/predictions",
        envoy.listener_url("graph").unwrap()
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .body(r#"{"data":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), GRAPH_FALLBACK_STATUS);
    assert_eq!(resp.text().await.unwrap(), GRAPH_FALLBACK_BODY);
    assert_eq!(envoy.graph_fallback_hits("graph").await.unwrap(), 1);
}

#[tokio::test]
async fn graph_listener_router_never_sees_a_request_the_filter_answers() {
    require_envoy();
    let dir = tempfile::tempdir().unwrap();
    let wasm = wasm_module(dir.path(), true);
    let config = graph_config(free_port().unwrap(), free_port().unwrap(), wasm);
    let envoy = Envoy::start(config, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let url = format!(
        "{}/api/v1.0/predictions",
        envoy.listener_url("graph").unwrap()
    );
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let resp = client
            .post(&url)
            .body(r#"{"data":{}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", envoy.log_tail());
        assert_eq!(resp.text().await.unwrap(), "graph answered");
    }
    assert_eq!(envoy.graph_fallback_hits("graph").await.unwrap(), 0);
}
