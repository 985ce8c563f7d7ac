//! The markdown report (pure).

use crate::oha::Run;

/// One row: a server serving a model over a protocol, with its numbers.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: String,
    pub protocol: String,
    pub server: String,
    pub saturation: Run,
    /// At the common moderate rate (half the slowest server's saturation for this model+protocol).
    pub common: Option<(u32, Run)>,
    /// At half its own saturation.
    pub half_own: Option<(u32, Run)>,
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// Renders the results table; `baseline` names the server the speed-up column divides by.
pub fn table(rows: &[Row], ours: &str, baseline: &str) -> String {
    let mut s = String::from(
        "| model | protocol | server | req/s at saturation | × MLServer | rate (rps) | p50 ms | p99 ms | half own load (rps) | p50 ms | p99 ms | errors |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let base = rows
            .iter()
            .find(|b| {
                b.model == r.model
                    && b.server == baseline
                    && b.protocol.split(' ').next() == r.protocol.split(' ').next()
            })
            .map(|b| b.saturation.rps);
        let speedup = match base {
            Some(b) if b > 0.0 && r.server != baseline => format!("{:.1}×", r.saturation.rps / b),
            _ => "–".into(),
        };
        let fmt = |x: &Option<(u32, Run)>| match x {
            Some((q, run)) => [q.to_string(), ms(run.p50_ms), ms(run.p99_ms)],
            None => ["–".into(), "–".into(), "–".into()],
        };
        let [cq, c50, c99] = fmt(&r.common);
        let [hq, h50, h99] = fmt(&r.half_own);
        let errors: u64 = r.saturation.failed
            + r.common.map_or(0, |c| c.1.failed)
            + r.half_own.map_or(0, |c| c.1.failed);
        let name = if r.server == ours {
            format!("**{}**", r.server)
        } else {
            r.server.clone()
        };
        s.push_str(&format!(
            "| {} | {} | {name} | {:.0} | {speedup} | {cq} | {c50} | {c99} | {hq} | {h50} | {h99} | {errors} |\n",
            r.model, r.protocol, r.saturation.rps
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64) -> Run {
        Run {
            rps,
            p50_ms: 0.25,
            p99_ms: 12.5,
            ok: 1,
            failed: 0,
        }
    }

    #[test]
    fn speedup_against_the_baseline_of_the_same_transport() {
        let rows = vec![
            Row {
                model: "sklearn".into(),
                protocol: "REST v2".into(),
                server: "seldon-mesh".into(),
                saturation: run(20000.0),
                common: Some((500, run(1.0))),
                half_own: Some((10000, run(1.0))),
            },
            Row {
                model: "sklearn".into(),
                protocol: "REST v2".into(),
                server: "MLServer".into(),
                saturation: run(1000.0),
                common: Some((500, run(1.0))),
                half_own: None,
            },
            Row {
                model: "sklearn".into(),
                protocol: "REST v1".into(),
                server: "seldon-core".into(),
                saturation: run(500.0),
                common: None,
                half_own: None,
            },
        ];
        let t = table(&rows, "seldon-mesh", "MLServer");
        assert!(t.contains("| sklearn | REST v2 | **seldon-mesh** | 20000 | 20.0× | 500 | 0.25 | 12.5 | 10000 | 0.25 | 12.5 | 0 |"), "{t}");
        assert!(t.contains("| sklearn | REST v2 | MLServer | 1000 | – |"));
        assert!(
            t.contains("| sklearn | REST v1 | seldon-core | 500 | 0.5× | – |"),
            "{t}"
        );
    }
}
