//! Load generators' command lines and JSON summaries (pure): oha for REST, ghz for gRPC.

use serde_json::Value;

/// One measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ok: u64,
    pub failed: u64,
}

/// `oha` arguments: POST `body` to `url` for `secs` over `conns` connections, open loop at
/// `rate` rps (with latency correction) or as fast as possible.
pub fn oha_args(url: &str, body: &str, secs: u32, conns: u32, rate: Option<u32>) -> Vec<String> {
    let mut a: Vec<String> = [
        "--no-tui",
        "--output-format",
        "json",
        "-m",
        "POST",
        "-H",
        "content-type: application/json",
    ]
    .map(String::from)
    .into();
    a.extend([
        "-z".into(),
        format!("{secs}s"),
        "-c".into(),
        conns.to_string(),
        "-d".into(),
        body.into(),
    ]);
    if let Some(q) = rate {
        a.extend(["-q".into(), q.to_string(), "--latency-correction".into()]);
    }
    a.push(url.into());
    a
}

/// Parses oha's `--output-format json`.
pub fn parse_oha(json: &str) -> Result<Run, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("oha JSON: {e}"))?;
    let num = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("oha JSON has no number at {p}"))
    };
    let (mut ok, mut failed) = (0, 0);
    for (code, n) in v
        .get("statusCodeDistribution")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let n = n.as_u64().unwrap_or(0);
        if code.starts_with('2') {
            ok += n
        } else {
            failed += n
        }
    }
    // Requests still in flight when `-z` ends are reported as "aborted due to deadline":
    // an artefact of stopping, not a server error.
    failed += v
        .get("errorDistribution")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(what, _)| !what.contains("deadline"))
        .filter_map(|(_, n)| n.as_u64())
        .sum::<u64>();
    Ok(Run {
        rps: num("/summary/requestsPerSec")?,
        p50_ms: num("/latencyPercentiles/p50")? * 1e3,
        p99_ms: num("/latencyPercentiles/p99")? * 1e3,
        ok,
        failed,
    })
}

/// `ghz` arguments for `inference.GRPCInferenceService/ModelInfer`.
pub fn ghz_args(
    proto: &str,
    import: &str,
    addr: &str,
    data: &str,
    secs: u32,
    conns: u32,
    rate: Option<u32>,
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--insecure".into(),
        "--proto".into(),
        proto.into(),
        "--import-paths".into(),
        import.into(),
        "--call".into(),
        "inference.GRPCInferenceService/ModelInfer".into(),
        "-d".into(),
        data.into(),
        "-z".into(),
        format!("{secs}s"),
        "-c".into(),
        conns.to_string(),
        "--connections".into(),
        conns.to_string(),
        "-O".into(),
        "json".into(),
    ];
    if let Some(q) = rate {
        a.extend(["-r".into(), q.to_string()]);
    }
    a.push(addr.into());
    a
}

/// Parses ghz's `-O json` (latencies in ns).
pub fn parse_ghz(json: &str) -> Result<Run, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("ghz JSON: {e}"))?;
    let pct = |p: u64| {
        v.get("latencyDistribution")
            .and_then(Value::as_array)
            .and_then(|d| {
                d.iter()
                    .find(|e| e.get("percentage").and_then(Value::as_u64) == Some(p))
            })
            .and_then(|e| e.get("latency").and_then(Value::as_f64))
            .map(|ns| ns / 1e6)
            .ok_or_else(|| format!("ghz JSON has no p{p}"))
    };
    let (mut ok, mut failed) = (0, 0);
    for (code, n) in v
        .get("statusCodeDistribution")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let n = n.as_u64().unwrap_or(0);
        if code == "OK" { ok += n } else { failed += n }
    }
    Ok(Run {
        rps: v
            .get("rps")
            .and_then(Value::as_f64)
            .ok_or("ghz JSON has no rps")?,
        p50_ms: pct(50)?,
        p99_ms: pct(99)?,
        ok,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oha_round_trip() {
        let a = oha_args("http://x/p", "{}", 10, 16, Some(200));
        assert!(
            a.windows(2).any(|w| w == ["-q", "200"]) && a.contains(&"--latency-correction".into())
        );
        assert_eq!(a.last().unwrap(), "http://x/p");
        assert!(!oha_args("http://x/p", "{}", 10, 16, None).contains(&"-q".into()));
        let r = parse_oha(
            r#"{"summary":{"requestsPerSec":1000.5},"latencyPercentiles":{"p50":0.0004,"p99":0.002},
               "statusCodeDistribution":{"200":10,"500":1},"errorDistribution":{"aborted":2,"aborted due to deadline":16}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Run {
                rps: 1000.5,
                p50_ms: 0.4,
                p99_ms: 2.0,
                ok: 10,
                failed: 3
            }
        );
        assert!(parse_oha("{}").unwrap_err().contains("requestsPerSec"));
        assert!(parse_oha("nope").unwrap_err().contains("oha JSON"));
    }

    #[test]
    fn ghz_round_trip() {
        let a = ghz_args("p.proto", "dir", "127.0.0.1:1", "{}", 5, 4, Some(100));
        assert!(a.windows(2).any(|w| w == ["-r", "100"]));
        let r = parse_ghz(
            r#"{"rps":500.0,"latencyDistribution":[{"percentage":50,"latency":300000},{"percentage":99,"latency":1500000}],
               "statusCodeDistribution":{"OK":100,"Unavailable":1}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Run {
                rps: 500.0,
                p50_ms: 0.3,
                p99_ms: 1.5,
                ok: 100,
                failed: 1
            }
        );
        assert!(parse_ghz(r#"{"rps":1}"#).unwrap_err().contains("p50"));
    }
}
