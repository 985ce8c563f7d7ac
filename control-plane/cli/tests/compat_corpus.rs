//! `seldon-mesh validate` on the drop-in corpus (`manifests/compat/`, issue 10 item 6): every
//! manifest prints one line, `<file>: SeldonDeployment "<name>" is valid`, nothing on stderr,
//! exit 0; every manifest under `refused/` exits 1 and prints each of its `# expect:` texts.
//! Files named `ambassador-*` are validated with `--ingress ambassador`. The same files go
//! through a real API server in `control-plane/operator/tests/compat_corpus.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `.yaml` files of `dir` (relative to the repository root), as relative paths, sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| Path::new(dir).join(e.unwrap().file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

/// Runs `seldon-mesh validate -f <rel>` (with the ingress the file's name asks for) from the
/// repository root, as a user would; returns (exit code, stdout, stderr).
fn validate(rel: &Path) -> (Option<i32>, String, String) {
    let name = rel.file_name().unwrap().to_string_lossy();
    let ingress = if name.starts_with("ambassador") {
        "ambassador"
    } else {
        "istio"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
        .current_dir(root())
        .args(["validate", "--ingress", ingress, "-f"])
        .arg(rel)
        .env_remove("SELDON_INGRESS")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sdep_name(path: &Path) -> String {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let doc = seldon_crd::parse_yaml(&text).unwrap().remove(0);
    doc.sdep.metadata.name.unwrap()
}

#[test]
fn validate_prints_valid_and_nothing_else_for_every_corpus_manifest() {
    let files = yaml_files("manifests/compat");
    assert!(files.len() >= 30, "only {} corpus manifests", files.len());
    for path in files {
        let (code, stdout, stderr) = validate(&path);
        let want = format!(
            "{}: SeldonDeployment {:?} is valid\n",
            path.display(),
            sdep_name(&path)
        );
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (Some(0), want.as_str(), ""),
            "{}",
            path.display()
        );
    }
}

#[test]
fn validate_refuses_every_refused_manifest_with_its_message() {
    let files = yaml_files("manifests/compat/refused");
    assert!(!files.is_empty());
    for path in files {
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        let expect: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expect.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        let (code, stdout, stderr) = validate(&path);
        assert_eq!(code, Some(1), "{}: {stdout}{stderr}", path.display());
        assert!(
            stdout.contains(&format!("SeldonDeployment {:?} has", sdep_name(&path))),
            "{stdout}"
        );
        for e in expect {
            assert!(
                stdout.contains(e.trim()),
                "{}: {e:?} not in\n{stdout}",
                path.display()
            );
        }
    }
}
