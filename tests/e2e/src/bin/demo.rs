//! `make demo`: a sample inference graph (transformer → router → two models) executed by the
//! filter in a real Envoy, with `testmodel` processes as nodes. Sends a prediction and its
//! feedback, prints both, and stops everything.

use anyhow::Context;
use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};

const GRAPH: &str = r#"
name: scale
type: TRANSFORMER
children:
- name: router
  type: ROUTER
  children:
  - name: model-a
    type: MODEL
  - name: model-b
    type: MODEL
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("graph:{GRAPH}");
    let spec = GraphSpec::new(
        GRAPH,
        vec![
            TestModelSpec::new("scale", Mode::Add).adding(1.0),
            TestModelSpec::new("router", Mode::Route).routing_to(1),
            TestModelSpec::new("model-a", Mode::Add).adding(10.0),
            TestModelSpec::new("model-b", Mode::Add).adding(100.0),
        ],
    );
    let g = GraphUnderTest::start(spec)
        .await
        .context("starting the nodes and Envoy")?;
    println!("Envoy with the seldon filter listens on {}", g.url);
    let client = reqwest::Client::builder().no_proxy().build()?;

    let request = r#"{"data":{"names":["x"],"ndarray":[[1.0]]}}"#;
    println!(
        "\n$ curl -X POST {}/api/v1.0/predictions -d '{request}'",
        g.url
    );
    let r = client
        .post(format!("{}/api/v1.0/predictions", g.url))
        .body(request)
        .send()
        .await?;
    let (status, puid) = (r.status(), r.headers().get("seldon-puid").cloned());
    let prediction: serde_json::Value = r.json().await?;
    println!(
        "{status} seldon-puid={puid:?}\n{}",
        serde_json::to_string_pretty(&prediction)?
    );

    let feedback = serde_json::json!({"request": serde_json::from_str::<serde_json::Value>(request)?, "response": prediction, "reward": 1.0});
    println!(
        "\n$ curl -X POST {}/api/v1.0/feedback -d '<request, response, reward 1.0>'",
        g.url
    );
    let r = client
        .post(format!("{}/api/v1.0/feedback", g.url))
        .body(feedback.to_string())
        .send()
        .await?;
    println!("{} {}", r.status(), r.text().await?);
    println!(
        "router received feedback: {}",
        serde_json::to_string(&g.node("router").feedback().await?)?
    );
    Ok(())
}
