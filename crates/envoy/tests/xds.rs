//! The ADS server with a real Envoy (`Envoy::start_xds`): an update applies without a new
//! Envoy process, and a rejected one (a NACK) is an error quoting Envoy's `error_detail`
//! while the previous config keeps serving. Run with `--features xds`.

use std::time::Duration;

use seldon_envoy::xds::{XdsError, XdsServer};
use seldon_envoy::{
    Cluster, Envoy, EnvoyConfig, EnvoyOptions, Listener, ListenerKind, envoy_binary, free_port,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
                let mut parts = head.lines().next().unwrap_or_default().split(' ');
                let body = format!(
                    "backend saw {} {}",
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default()
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

fn route(name: &str, port: u16, rewrite: Option<&str>) -> Listener {
    Listener {
        name: name.into(),
        port,
        kind: ListenerKind::Route {
            cluster: "backend".into(),
            prefix_rewrite: rewrite.map(Into::into),
            timeout: None,
        },
    }
}

async fn get(url: &str) -> String {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_apply_to_the_same_envoy_and_a_rejected_one_keeps_the_old_config() {
    if let Err(e) = envoy_binary() {
        panic!("this test needs a real Envoy: {e}");
    }
    let backend = backend().await;
    let (admin, port) = (free_port().unwrap(), free_port().unwrap());
    let mut first = EnvoyConfig::new(admin);
    first
        .clusters
        .push(Cluster::http1("backend", "127.0.0.1", backend));
    first.listeners.push(route("l", port, None));

    let mut xds = XdsServer::start(&first).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let envoy = Envoy::start_xds(
        first.clone(),
        xds.port(),
        Duration::from_secs(1),
        dir.path(),
        &EnvoyOptions::default(),
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/x");
    assert_eq!(get(&url).await, "backend saw GET /x");
    let bootstrap = std::fs::read_to_string(envoy.config_path()).unwrap();
    assert!(
        bootstrap.contains("dynamic_resources") && !bootstrap.contains("listeners"),
        "the bootstrap holds no listener of its own:\n{bootstrap}"
    );

    // A changed route, pushed: the same Envoy answers with it.
    let mut second = first.clone();
    second.listeners[0] = route("l", port, Some("/v2/"));
    xds.push_clusters(&second, &first).await.unwrap();
    xds.push_listeners(&second).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(&url).await != "backend saw GET /v2/x" {
        assert!(
            std::time::Instant::now() < deadline,
            "the update never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A listener on a port someone else holds: Envoy cannot bind it and NACKs.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut third = second.clone();
    third.listeners.push(route("taken", taken_port, None));
    let err = xds.push_listeners(&third).await.unwrap_err();
    let XdsError::Rejected { kind, detail, .. } = &err else {
        panic!("not a NACK: {err}");
    };
    eprintln!("NACK surfaced as: {err}");
    assert_eq!(*kind, "listeners");
    assert!(
        detail.contains(&taken_port.to_string()),
        "Envoy's error_detail names the port: {err}"
    );
    assert!(
        err.to_string().starts_with("Envoy rejected the listeners"),
        "{err}"
    );
    // The previous config still serves, from the same process.
    assert_eq!(get(&url).await, "backend saw GET /v2/x");
    assert!(std::path::Path::new(&format!("/proc/{}", envoy.pid())).exists());
    drop(taken);
}
