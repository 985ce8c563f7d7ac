//! Runs `oha` (the pinned load generator) and reads its JSON summary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// What to ask oha for.
#[derive(Debug, Clone)]
pub struct OhaSpec {
    pub url: String,
    pub body: String,
    pub duration: Duration,
    pub connections: usize,
    /// `Some(q)`: open loop at `q` rps with `--latency-correction`; `None`: as fast as it can.
    pub rate: Option<u32>,
}

/// oha's numbers for one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OhaResult {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub success_rate: f64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Everything else: other statuses and transport errors.
    pub failed: u64,
}

/// Why oha gave no numbers.
#[derive(Debug, thiserror::Error)]
pub enum OhaError {
    #[error("running {bin}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("oha exited with {status}: {stderr}")]
    Failed { status: String, stderr: String },
    #[error("oha's JSON: {0}")]
    Parse(String),
}

/// The command line for `spec` (JSON output, no TUI).
pub fn args(spec: &OhaSpec) -> Vec<String> {
    let mut a = vec![
        "--no-tui".into(),
        "--output-format".into(),
        "json".into(),
        "-z".into(),
        format!("{}ms", spec.duration.as_millis()),
        // Requests still in flight at the deadline finish and count; without this oha aborts
        // them and counts one error per busy connection ("aborted due to deadline").
        "--wait-ongoing-requests-after-deadline".into(),
        "-c".into(),
        spec.connections.to_string(),
        "-m".into(),
        "POST".into(),
        "-H".into(),
        "content-type: application/json".into(),
        "-d".into(),
        spec.body.clone(),
    ];
    if let Some(q) = spec.rate {
        a.extend(["-q".into(), q.to_string(), "--latency-correction".into()]);
    }
    a.push(spec.url.clone());
    a
}

/// Reads oha's `--output-format json` document.
pub fn parse(json: &str) -> Result<OhaResult, OhaError> {
    let v: Value = serde_json::from_str(json).map_err(|e| OhaError::Parse(e.to_string()))?;
    let num = |ptr: &str| {
        v.pointer(ptr)
            .and_then(Value::as_f64)
            .ok_or_else(|| OhaError::Parse(format!("no number at {ptr}")))
    };
    let mut ok = 0;
    let mut failed = 0;
    if let Some(codes) = v.get("statusCodeDistribution").and_then(Value::as_object) {
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            if code.starts_with('2') {
                ok += n
            } else {
                failed += n
            }
        }
    }
    if let Some(errors) = v.get("errorDistribution").and_then(Value::as_object) {
        failed += errors.values().filter_map(Value::as_u64).sum::<u64>();
    }
    Ok(OhaResult {
        rps: num("/summary/requestsPerSec")?,
        p50_us: num("/latencyPercentiles/p50")? * 1e6,
        p99_us: num("/latencyPercentiles/p99")? * 1e6,
        success_rate: num("/summary/successRate")?,
        ok,
        failed,
    })
}

/// Runs oha and parses its output. Through `seldon-supervise`: oha dies with the bench if the
/// bench aborts mid-run (the caller's `spawn_blocking` thread waits in `output()` until oha
/// exits, so the parent-death signal cannot fire early).
pub fn run(bin: &Path, spec: &OhaSpec) -> Result<OhaResult, OhaError> {
    let mut cmd = Command::new(bin);
    cmd.args(args(spec));
    let out = seldon_supervise::wrap(&cmd)
        .output()
        .map_err(|source| OhaError::Spawn {
            bin: bin.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(OhaError::Failed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// `oha --version`, e.g. `oha 1.16.0`.
pub fn version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_asks_for_latency_correction() {
        let spec = OhaSpec {
            url: "http://x/".into(),
            body: "{}".into(),
            duration: Duration::from_secs(2),
            connections: 4,
            rate: Some(1000),
        };
        let a = args(&spec);
        assert!(a.windows(2).any(|w| w == ["-q", "1000"]));
        assert!(a.contains(&"--latency-correction".to_string()));
        assert!(a.contains(&"--wait-ongoing-requests-after-deadline".to_string()));
        assert_eq!(a.last().map(String::as_str), Some("http://x/"));
        let sat = OhaSpec { rate: None, ..spec };
        assert!(!args(&sat).contains(&"-q".to_string()));
    }

    #[test]
    fn parses_the_summary() {
        let json = r#"{"summary":{"successRate":1.0,"requestsPerSec":998.5},
            "latencyPercentiles":{"p50":0.00042,"p99":0.0011},
            "statusCodeDistribution":{"200":9980,"503":2},"errorDistribution":{"aborted":1}}"#;
        let r = parse(json).unwrap();
        assert_eq!(r.rps, 998.5);
        assert!((r.p50_us - 420.0).abs() < 1e-6);
        assert!((r.p99_us - 1100.0).abs() < 1e-6);
        assert_eq!((r.ok, r.failed), (9980, 3));
    }

    #[test]
    fn missing_fields_are_a_parse_error() {
        assert!(matches!(
            parse(r#"{"summary":{}}"#),
            Err(OhaError::Parse(_))
        ));
        assert!(matches!(parse("not json"), Err(OhaError::Parse(_))));
    }
}
