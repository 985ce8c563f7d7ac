//! Seldon #4450, for real: a pod whose iptables rules were installed by Istio's own
//! `pilot-agent istio-iptables` (the rules istio-init and the CNI plugin write, with the
//! injector's default arguments) and whose sidecar is not running yet, the state an init
//! container meets under the Istio CNI plugin. A download from a "model store" in another
//! network namespace fails as the pod's user (redirected to 15001, where nothing listens) and
//! succeeds as the UID render gives the model initializer. Both UIDs are read from the
//! rendered Deployment, so the test follows render.
//!
//! Needs root (network namespaces, iptables) and `ip`, `curl`, `python3`, `setpriv`, like the
//! mesh test; `pilot-agent` comes from `scripts/istio-test-env.sh`. Only addresses inside the
//! two namespaces this test creates are used; both are deleted on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seldon_render::{Manifest, RenderOptions, render};

mod common;

use common::{Guard, Netns, TempDir, ok, pilot_agent, repo, run};

/// (initializer runAsUser, pod runAsUser) from the rendered sklearn-iris Deployment.
fn rendered_uids() -> (i64, i64) {
    let text = std::fs::read_to_string(repo().join("manifests/samples/sklearn-iris.yaml")).unwrap();
    let sdep = seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep;
    let dep = render(&sdep, &RenderOptions::default())
        .unwrap()
        .into_iter()
        .find(|m| m.kind() == "Deployment")
        .map(|m| Manifest::to_value(&m))
        .unwrap();
    let pod = &dep["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert!(
        init["name"]
            .as_str()
            .unwrap()
            .ends_with("-model-initializer")
    );
    (
        init["securityContext"]["runAsUser"].as_i64().unwrap(),
        pod["securityContext"]["runAsUser"].as_i64().unwrap(),
    )
}

/// `curl` from the pod namespace as `uid`: (exit code, body).
fn download(pod: &Netns, uid: i64, url: &str) -> (Option<i32>, Vec<u8>) {
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
fn initializer_uid_downloads_before_the_sidecar_and_the_pod_user_cannot() {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test needs root (network namespaces and iptables), as the mesh test does"
    );
    let (init_uid, pod_uid) = rendered_uids();
    assert_eq!((init_uid, pod_uid), (1337, 8888));
    let pilot_agent = pilot_agent();

    let id = std::process::id();
    let pod = Netns::new(format!("sm-egress-pod-{id}"));
    let store = Netns::new(format!("sm-egress-store-{id}"));
    let (a, b) = (format!("smp{id}"), format!("sms{id}"));
    ok(Command::new("ip").args([
        "-n", &pod.0, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &store.0,
    ]));
    ok(Command::new("ip").args(["-n", &pod.0, "addr", "add", "10.77.0.2/24", "dev", &a]));
    ok(Command::new("ip").args(["-n", &store.0, "addr", "add", "10.77.0.3/24", "dev", &b]));
    ok(Command::new("ip").args(["-n", &pod.0, "link", "set", &a, "up"]));
    ok(Command::new("ip").args(["-n", &store.0, "link", "set", &b, "up"]));

    // the model store: a plain HTTP server in its own namespace
    let dir = TempDir(std::env::temp_dir().join(format!("sm-egress-{id}")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let model: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.0.join("model.bin"), &model).unwrap();
    let _server = Guard(
        store
            .exec()
            .args([
                "setpriv",
                "--pdeathsig",
                "KILL",
                "python3",
                "-m",
                "http.server",
                "9000",
            ])
            .args(["--bind", "10.77.0.3", "--directory"])
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = "http://10.77.0.3:9000/model.bin";
    let deadline = Instant::now() + Duration::from_secs(20);
    while download(&pod, pod_uid, url).0 != Some(0) {
        assert!(Instant::now() < deadline, "model store did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }

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

    // no sidecar yet: the pod's user is redirected to 15001 and refused (Seldon #4450) ...
    let (code, body) = download(&pod, pod_uid, url);
    assert_eq!(code, Some(7), "curl exit 7 = could not connect");
    assert!(body.is_empty());
    // ... the rendered initializer's UID goes straight out and gets the model
    let (code, body) = download(&pod, init_uid, url);
    assert_eq!(code, Some(0));
    assert_eq!(body, model);
}
