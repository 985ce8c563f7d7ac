//! Node calls over localhost, through Istio's real iptables rules: a pod network namespace
//! whose rules were written by `pilot-agent istio-iptables` (the injector's default
//! arguments), with a node server listening on the port of a rendered `seldon-local-<port>`
//! cluster. A connection made as Envoy's UID (1337) to the cluster's address (127.0.0.1)
//! reaches the node directly. The same UID connecting to the pod's own IP, where the Service
//! path's endpoint for this pod points, is redirected to the sidecar's inbound port 15006
//! (nothing listens there in this test, so it is refused): the rules are active, and only the
//! localhost path skips the sidecar.
//!
//! Needs root (network namespaces, iptables) and `ip`, `curl`, `python3`, `setpriv`, like
//! `initializer_egress.rs`; `pilot-agent` comes from `scripts/istio-test-env.sh`. Only
//! addresses inside the network namespace this test creates are used; it is deleted on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seldon_render::{ISTIO_PROXY_UID, Manifest, NodeCalls, RenderOptions, render};
use serde_json::Value;

mod common;

use common::{Guard, Netns, TempDir, ok, pilot_agent, repo, run};

/// (address, port) of the first localhost cluster rendered for transformer-model.
fn rendered_local_endpoint() -> (String, u16) {
    let text =
        std::fs::read_to_string(repo().join("manifests/samples/transformer-model.yaml")).unwrap();
    let sdep = seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep;
    let opts = RenderOptions {
        node_calls: NodeCalls::Localhost,
        ..RenderOptions::default()
    };
    let filter: Value = render(&sdep, &opts)
        .unwrap()
        .iter()
        .map(Manifest::to_value)
        .find(|v| v["metadata"]["name"] == "income-default-node-calls")
        .unwrap();
    let addr = &filter["spec"]["configPatches"][0]["patch"]["value"]["load_assignment"]["endpoints"]
        [0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    (
        addr["address"].as_str().unwrap().to_string(),
        u16::try_from(addr["port_value"].as_u64().unwrap()).unwrap(),
    )
}

/// `curl` from the pod namespace as `uid`: (exit code, body).
fn call(pod: &Netns, uid: i64, url: &str) -> (Option<i32>, Vec<u8>) {
    let out = run(pod.exec().args([
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "curl",
        "-sS",
        "--fail",
        "-m",
        "5",
        url,
    ]));
    (out.status.code(), out.stdout)
}

#[test]
fn envoy_reaches_a_node_on_localhost_past_istio_iptables_and_not_on_the_pod_ip() {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test needs root (network namespaces and iptables), as the mesh test does"
    );
    let (address, port) = rendered_local_endpoint();
    assert_eq!(address, "127.0.0.1");
    let pilot_agent = pilot_agent();

    let id = std::process::id();
    let pod = Netns::new(format!("sm-nodecalls-{id}"));
    // the pod's own (non-loopback) IP, on a veth pair whose both ends stay in the namespace
    let pod_ip = "10.78.0.2";
    ok(pod.exec().args([
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]));
    ok(pod
        .exec()
        .args(["ip", "addr", "add", &format!("{pod_ip}/24"), "dev", "eth0"]));
    for dev in ["eth0", "eth0p"] {
        ok(pod.exec().args(["ip", "link", "set", dev, "up"]));
    }

    // the node: an HTTP server on all addresses of its port, as the model servers bind
    let dir = TempDir(std::env::temp_dir().join(format!("sm-nodecalls-{id}")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let answer = br#"{"data":{"ndarray":[[0.1,0.9]]}}"#.to_vec();
    std::fs::write(dir.0.join("predict"), &answer).unwrap();
    let _node = Guard(
        pod.exec()
            .args([
                "setpriv",
                "--pdeathsig",
                "KILL",
                "python3",
                "-m",
                "http.server",
            ])
            .arg(port.to_string())
            .args(["--bind", "0.0.0.0", "--directory"])
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let local_url = format!("http://{address}:{port}/predict");
    let pod_ip_url = format!("http://{pod_ip}:{port}/predict");
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(&pod, ISTIO_PROXY_UID, &local_url).0 != Some(0) {
        assert!(Instant::now() < deadline, "node server did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // before the rules, the pod IP answers too
    assert_eq!(
        call(&pod, ISTIO_PROXY_UID, &pod_ip_url),
        (Some(0), answer.clone())
    );

    // the rules istio-init / the Istio CNI plugin install (the injector's default arguments)
    ok(pod.exec().arg(&pilot_agent).args([
        "istio-iptables",
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        "1337",
        "-m",
        "REDIRECT",
        "-i",
        "*",
        "-x",
        "",
        "-b",
        "*",
        "-d",
        "15090,15021,15020",
    ]));

    // Envoy's UID to the rendered localhost cluster: straight to the node
    assert_eq!(call(&pod, ISTIO_PROXY_UID, &local_url), (Some(0), answer));
    // the same UID to the pod's own IP is sent to the sidecar's inbound 15006 (nothing listens
    // here): the rules are in force, and that path goes through the sidecar
    let (code, body) = call(&pod, ISTIO_PROXY_UID, &pod_ip_url);
    assert_eq!(code, Some(7), "curl exit 7 = could not connect");
    assert!(body.is_empty());
}
