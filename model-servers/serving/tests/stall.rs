//! Issue 11, item 4: large bodies are decoded off the async workers, so a tiny prediction is
//! not stuck behind them. A real server (its own 2-worker runtime, as on a 2-core node) gets
//! two ~10 MB predictions, then a tiny one; the tiny one must complete before either big one.
//! Ordering, not a wall-clock threshold: speed claims belong in the benchmarks.

use std::sync::Arc;
use std::time::Duration;

use seldon_serving::builtin::SumModel;
use seldon_serving::config::Config;
use seldon_serving::server::bind_all;
use serde_json::{Value, json};

/// A v1 prediction of about `bytes` bytes: one row of `1.5`s.
fn big_body(bytes: usize) -> String {
    let n = bytes / 4;
    let mut s = String::with_capacity(bytes + 32);
    s.push_str(r#"{"data":{"ndarray":[["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str("1.5");
    }
    s.push_str("]]}}");
    s
}

#[test]
fn a_tiny_prediction_completes_before_two_10_mb_ones() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::for_tests();
    config.unit_id = "sum".into();
    config.max_body_bytes = 32 * 1024 * 1024;
    let bound = server_rt
        .block_on(bind_all(config, Arc::new(SumModel::default())))
        .unwrap();
    let http = bound.http_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(bound.serve(async move {
        let _ = stopped.await;
    }));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let order = client_rt.block_on(async move {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://{http}/predict");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, Value)>();
        let big = big_body(10 * 1024 * 1024);
        for name in ["big-1", "big-2"] {
            let (client, url, body, tx) = (client.clone(), url.clone(), big.clone(), tx.clone());
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = tx.send((name, r.json().await.unwrap()));
            });
        }
        // Sequencing only: let both big bodies arrive before the tiny request is sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tiny: Value = client
            .post(&url)
            .json(&json!({"data": {"ndarray": [[1, 2, 3]]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let _ = tx.send(("tiny", tiny));
        drop(tx);
        let mut order = Vec::new();
        while let Some((name, body)) = rx.recv().await {
            if name == "tiny" {
                assert_eq!(body["data"]["ndarray"], json!([[6.0]]));
            } else {
                let n = (10 * 1024 * 1024 / 4) as f64;
                assert_eq!(body["data"]["ndarray"], json!([[1.5 * n]]), "{name}");
            }
            order.push(name);
        }
        order
    });
    assert_eq!(order.len(), 3);
    assert_eq!(
        order[0], "tiny",
        "the tiny prediction waited for a big one: {order:?}"
    );
    let _ = stop.send(());
    server_rt.block_on(server).unwrap().unwrap();
}
