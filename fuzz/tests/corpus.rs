//! CI's fuzzing: every committed corpus file (fuzz/corpus/<target>/) replayed, then a short
//! seeded random budget per target (FUZZ_CI_MS, default 600 ms). Stable toolchain, no
//! libFuzzer: `make fuzz` runs the long campaign (fuzz/README.md).
//!
//! `cargo test -p seldon-fuzz --test corpus -- --ignored write_seed_corpus` rewrites the
//! generated seeds (real payloads, samples and configs are copied in; structured targets get
//! random byte strings, which their generators turn into graphs and event orders).

use std::path::{Path, PathBuf};
use std::time::Duration;

use seldon_fuzz::TARGETS;
use seldon_fuzz::driver::{self, Rng};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn show(input: &[u8]) -> String {
    format!(
        "{} bytes: {:?}",
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(2000)])
    )
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in TARGETS {
        let files = driver::load_corpus(&corpus_dir(name)).unwrap();
        assert!(files.len() >= 20, "{name}: only {} seed files", files.len());
    }
}

#[test]
fn corpus_replays_without_a_crash() {
    for (name, target) in TARGETS {
        for (file, input) in driver::load_corpus(&corpus_dir(name)).unwrap() {
            if let Err(crash) = driver::run_one(*target, &input) {
                panic!("{name}/{file}: {}", crash.message);
            }
        }
    }
}

#[test]
fn seeded_random_budget_finds_no_crash() {
    let ms = std::env::var("FUZZ_CI_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    for (i, (name, target)) in TARGETS.iter().enumerate() {
        let corpus: Vec<Vec<u8>> = driver::load_corpus(&corpus_dir(name))
            .unwrap()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        let stats = driver::fuzz_for(
            *target,
            &corpus,
            0x5e1d0 + i as u64,
            Duration::from_millis(ms),
            1,
        );
        eprintln!(
            "{name}: {} inputs in {ms} ms, {} crashes",
            stats.inputs,
            stats.crashes.len()
        );
        if let Some(crash) = stats.crashes.first() {
            panic!("{name}: {}\ninput {}", crash.message, show(&crash.input));
        }
        assert!(stats.inputs > 0, "{name} ran no input");
    }
}

/// The driver itself: a seed decides the inputs, so a CI failure reproduces.
#[test]
fn the_driver_is_deterministic_and_reports_a_panic() {
    let corpus = vec![b"{\"a\":1}".to_vec()];
    let mut a = Rng::new(7);
    let mut b = Rng::new(7);
    for _ in 0..100 {
        assert_eq!(
            driver::mutate(&mut a, &corpus[0], &corpus),
            driver::mutate(&mut b, &corpus[0], &corpus)
        );
    }
    fn panics_on_z(data: &[u8]) {
        assert!(!data.contains(&b'z'), "found z");
    }
    let stats = driver::fuzz_for(panics_on_z, &corpus, 1, Duration::from_secs(5), 1);
    let crash = stats.crashes.first().expect("a z is found within 5 s");
    assert!(crash.input.contains(&b'z'));
    assert_eq!(crash.message, "found z");
}

#[test]
fn an_unknown_target_is_none() {
    assert!(seldon_fuzz::target("protocol_ops").is_some());
    assert!(seldon_fuzz::target("nope").is_none());
}

// ---- seed corpus ------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    driver::load_corpus(dir).unwrap()
}

/// Length of the JSON header of a binary-extension body.
fn header_length(body: &[u8]) -> usize {
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    stream.next().unwrap().unwrap();
    stream.byte_offset()
}

#[test]
#[ignore = "rewrites fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let testdata = repo().join("crates/protocol/testdata");
    let mut payloads = files(&testdata.join("v1"));
    payloads.extend(files(&testdata.join("v2")));
    let mut rng = Rng::new(0xf0220);

    // protocol_ops: every real payload, plus router replies, feedback, aggregate parts.
    for (name, bytes) in &payloads {
        write("protocol_ops", name, bytes);
    }
    let extra: &[(&str, &[u8])] = &[
        ("route-ndarray.json", br#"{"data":{"ndarray":[[1]]}}"#),
        ("route-tensor.json", br#"{"data":{"tensor":{"shape":[1],"values":[1.0]}}}"#),
        ("route-tftensor.json", br#"{"data":{"tftensor":{"dtype":"DT_INT32","intVal":[0]}}}"#),
        ("route-bare.json", b"[-1]"),
        ("feedback-routing.json", br#"{"response":{"meta":{"routing":{"r":1,"u":0}}},"reward":1}"#),
        ("inject-existing.json", br#"{"meta":{"puid":"p","routing":{"a":2}},"data":{"ndarray":[1]}}"#),
        ("inject-null-meta.json", br#"{"meta":null,"strData":"x"}"#),
        ("aggregate-parts.bin", b"{\"data\":{\"ndarray\":[1]}}\x00{\"data\":{\"ndarray\":[2]}}\x00[]"),
        ("v2-duplicate-keys.json", br#"{"outputs":[],"id":"a","outputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#),
        ("grpc-framed.bin", b"\x00\x00\x00\x00\x05\x1a\x03\x0a\x01\x61"),
    ];
    for (name, bytes) in extra {
        write("protocol_ops", name, bytes);
    }

    // v2_binary: 2 bytes of header length (0xFFFF: none), then the body.
    for (name, bytes) in &payloads {
        let len: u16 = if name.ends_with(".bin") {
            header_length(bytes) as u16
        } else {
            u16::MAX
        };
        let mut seed = len.to_le_bytes().to_vec();
        seed.extend_from_slice(bytes);
        write("v2_binary", name, &seed);
    }
    for i in 0..13u8 {
        // Raw sections: the first byte picks the datatype.
        let n = 4 * (1 + rng.below(6));
        let mut seed = vec![i, 0];
        seed.extend((0..n).map(|_| rng.next_u64() as u8 & 1));
        write("v2_binary", &format!("raw-{i:02}.bin"), &seed);
    }

    // executor and graph_compile (mode byte odd): random bytes for the generators.
    for i in 0..40 {
        let n = 32 + rng.below(1024);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        write("executor", &format!("random-{i:02}.bin"), &bytes);
        let mut graph = vec![1 + 2 * (i as u8 % 100)];
        graph.extend(&bytes[..bytes.len().min(512)]);
        write("graph_compile", &format!("random-{i:02}.bin"), &graph);
    }
    // graph_compile (mode byte even): FilterConfig JSON, as the operator and local mode render it.
    let configs: &[(&str, &str)] = &[
        (
            "single",
            r#"{"deployment":"d","namespace":"ns","predictor":"p","graph":{"name":"m"},"nodes":{"m":{"cluster":"c","authority":"m:9000","port":9000}}}"#,
        ),
        (
            "router",
            r#"{"deployment":"d","namespace":"ns","predictor":"p","protocol":"seldon","graph":{"name":"r","type":"ROUTER","children":[{"name":"a"},{"name":"b"}]},"nodes":{"r":{"cluster":"c","authority":"r:9000","port":9000},"a":{"cluster":"a","authority":"a:9000","port":9000},"b":{"cluster":"b","authority":"b:9000","port":9000,"transport":"grpc"}}}"#,
        ),
        (
            "abtest",
            r#"{"deployment":"d","namespace":"ns","predictor":"p","graph":{"name":"ab","implementation":"RANDOM_ABTEST","parameters":[{"name":"ratioA","value":"0.3","type":"FLOAT"}],"children":[{"name":"a"},{"name":"b"}]},"nodes":{"a":{"cluster":"a","authority":"a:9000","port":9000},"b":{"cluster":"b","authority":"b:9000","port":9000}}}"#,
        ),
        (
            "duplicate",
            r#"{"deployment":"d","namespace":"ns","predictor":"p","graph":{"name":"a","type":"COMBINER","children":[{"name":"a"},{"name":"b"}]},"nodes":{"a":{"cluster":"a","authority":"a:9000","port":9000},"b":{"cluster":"b","authority":"b:9000","port":9000}}}"#,
        ),
        (
            "v2-logger-tracing",
            r#"{"deployment":"d","namespace":"ns","predictor":"p","protocol":"v2","graph":{"name":"t","type":"TRANSFORMER","logger":{"mode":"all"},"children":[{"name":"m","implementation":"SKLEARN_SERVER","modelUri":"gs://b/m"}]},"nodes":{"t":{"cluster":"t","authority":"t:9000","port":9000},"m":{"cluster":"m","authority":"m:9000","port":9000,"timeoutMs":20}},"payloadLogger":{"cluster":"l","authority":"l"},"tracing":{"cluster":"o","authority":"o","sampleRatio":0.5}}"#,
        ),
        (
            "unknown-type",
            r#"{"deployment":"d","namespace":"ns","predictor":"p","graph":{"name":"u","type":"UNKNOWN_TYPE","methods":["ROUTE","AGGREGATE","BOGUS"],"children":[{"name":"x"}]},"nodes":{}}"#,
        ),
    ];
    for (name, json) in configs {
        let mut seed = vec![0];
        seed.extend_from_slice(json.as_bytes());
        write("graph_compile", &format!("config-{name}.json"), &seed);
    }

    // crd_parse: every sample manifest, plus JSON and multi-document forms.
    let samples = files(&repo().join("manifests/samples"));
    for (name, bytes) in &samples {
        write("crd_parse", name, bytes);
    }
    for (name, bytes) in files(&repo().join("manifests/samples/local")) {
        if name.ends_with(".yaml") {
            write("crd_parse", &format!("local-{name}"), &bytes);
        }
    }
    for (name, bytes) in samples.iter().take(6) {
        let docs = seldon_crd::parse_yaml(&String::from_utf8_lossy(bytes)).unwrap();
        let json = serde_json::to_vec(&docs[0].sdep).unwrap();
        write("crd_parse", &format!("{name}.json"), &json);
    }
    let multi = [&samples[0].1[..], b"\n---\n", &samples[1].1[..]].concat();
    write("crd_parse", "multi-doc.yaml", &multi);
    write("crd_parse", "anchors.yaml", b"apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: x}\nspec:\n  predictors:\n  - &p {name: a, graph: {name: m, implementation: SKLEARN_SERVER, modelUri: 'gs://x'}}\n  - *p\n");
    write(
        "crd_parse",
        "wrong-kind.yaml",
        b"apiVersion: v1\nkind: Pod\n",
    );
}
