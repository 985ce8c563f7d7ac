//! Prometheus metrics with Seldon's wrapper names and labels: feedback counters and the
//! custom metrics models return in `meta.metrics` (COUNTER adds, GAUGE sets, TIMER observes
//! milliseconds into a seconds histogram with Seldon's 50 log buckets from 1 ms to 30 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::model::{Metric, MetricType};

/// Feedback count (exposed as `seldon_api_model_feedback_total`).
pub const FEEDBACK: &str = "seldon_api_model_feedback";
/// Sum of feedback rewards (exposed as `seldon_api_model_feedback_reward_total`).
pub const FEEDBACK_REWARD: &str = "seldon_api_model_feedback_reward";

type Labels = Vec<(String, String)>;
type FloatCounter = Family<Labels, Counter<f64, AtomicU64>>;
type FloatGauge = Family<Labels, Gauge<f64, AtomicU64>>;
type Timer = Family<Labels, Histogram, fn() -> Histogram>;

/// Seldon's TIMER bucket bounds, bit for bit: seldon-core's `np.logspace(-3, np.log10(30), 50)`
/// (10 to the power of evenly spaced exponents, the last exactly `log10(30)`), so the `le`
/// labels equal the Python wrapper's (`0.001`, `0.0012341553253454693`, …,
/// `29.999999999999996`).
pub fn timer_bounds() -> Vec<f64> {
    let (start, stop) = (-3.0f64, 30f64.log10());
    let step = (stop - start) / 49.0;
    (0..50u32)
        .map(|i| {
            let exponent = if i == 49 {
                stop
            } else {
                f64::from(i) * step + start
            };
            10f64.powf(exponent)
        })
        .collect()
}

fn timer_histogram() -> Histogram {
    Histogram::new(timer_bounds())
}

/// The `method` label values of Seldon's wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Predict,
    Feedback,
    InputTransform,
    OutputTransform,
    Router,
    Aggregate,
    Health,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Predict => "predict",
            Method::Feedback => "feedback",
            Method::InputTransform => "inputtransform",
            Method::OutputTransform => "outputtransform",
            Method::Router => "router",
            Method::Aggregate => "aggregate",
            Method::Health => "health",
        }
    }
}

#[derive(Default)]
struct Families {
    counters: HashMap<String, FloatCounter>,
    gauges: HashMap<String, FloatGauge>,
    timers: HashMap<String, Timer>,
}

/// The process's metrics registry.
pub struct Metrics {
    base: Labels,
    registry: Mutex<(Registry, Families)>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `image:tag` → (`image`, `tag`).
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), String::new()),
    }
}

fn valid_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Metrics {
    /// Labels every metric carries, from the deployment identity.
    pub fn new(config: &Config) -> Self {
        let (image, version) = split_image(&config.unit_image);
        let predictor_version = serde_json::from_str::<serde_json::Value>(&config.predictor_labels)
            .ok()
            .and_then(|v| {
                v.get("version")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let base = vec![
            ("deployment_name", config.deployment_id.clone()),
            ("model_name", config.unit_id.clone()),
            ("model_image", image.clone()),
            ("model_version", version.clone()),
            ("predictor_name", config.predictor_id.clone()),
            ("predictor_version", predictor_version),
            ("worker_id", std::process::id().to_string()),
            ("seldon_deployment_name", config.deployment_id.clone()),
            ("image_name", image),
            ("image_version", version),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Metrics {
            base,
            registry: Mutex::new((Registry::default(), Families::default())),
        }
    }

    fn labels(&self, method: Method, tags: &std::collections::BTreeMap<String, String>) -> Labels {
        let mut labels = self.base.clone();
        labels.push(("method".into(), method.as_str().into()));
        for (k, v) in tags {
            if valid_name(k) && !labels.iter().any(|(l, _)| l == k) {
                labels.push((k.clone(), v.clone()));
            }
        }
        labels
    }

    /// Records custom metrics returned by a hook.
    pub fn record(&self, method: Method, metrics: &[Metric]) {
        let Ok(mut guard) = self.registry.lock() else {
            return;
        };
        let (registry, families) = &mut *guard;
        for m in metrics {
            if !valid_name(&m.key) {
                tracing::warn!(key = %m.key, "custom metric key is not a valid Prometheus name; dropped");
                continue;
            }
            let taken = |kind: &str| {
                tracing::warn!(key = %m.key, kind, "custom metric key already used by another type; dropped");
            };
            let labels = self.labels(method, &m.tags);
            let value = f64::from(m.value);
            match m.metric_type {
                MetricType::Counter => {
                    if families.gauges.contains_key(&m.key) || families.timers.contains_key(&m.key)
                    {
                        taken("COUNTER");
                        continue;
                    }
                    let fam = families.counters.entry(m.key.clone()).or_insert_with(|| {
                        let f = FloatCounter::default();
                        registry.register(m.key.clone(), "custom metric", f.clone());
                        f
                    });
                    fam.get_or_create(&labels).inc_by(value);
                }
                MetricType::Gauge => {
                    if families.counters.contains_key(&m.key)
                        || families.timers.contains_key(&m.key)
                    {
                        taken("GAUGE");
                        continue;
                    }
                    let fam = families.gauges.entry(m.key.clone()).or_insert_with(|| {
                        let f = FloatGauge::default();
                        registry.register(m.key.clone(), "custom metric", f.clone());
                        f
                    });
                    fam.get_or_create(&labels).set(value);
                }
                MetricType::Timer => {
                    if families.counters.contains_key(&m.key)
                        || families.gauges.contains_key(&m.key)
                    {
                        taken("TIMER");
                        continue;
                    }
                    let fam = families.timers.entry(m.key.clone()).or_insert_with(|| {
                        let f = Timer::new_with_constructor(timer_histogram as fn() -> Histogram);
                        registry.register(m.key.clone(), "custom metric (seconds)", f.clone());
                        f
                    });
                    fam.get_or_create(&labels).observe(value / 1000.0);
                }
            }
        }
    }

    /// Exposes one of the server's own counters (tracing's `seldon_otlp_*`) next to the
    /// custom metrics, without Seldon's labels.
    pub fn register_counter(&self, name: &str, help: &str, counter: Counter) {
        if let Ok(mut guard) = self.registry.lock() {
            guard.0.register(name, help, counter);
        }
    }

    /// Counts one feedback and adds its reward.
    pub fn feedback(&self, reward: f64) {
        #[allow(clippy::cast_possible_truncation)]
        let reward = reward as f32;
        self.record(
            Method::Feedback,
            &[
                crate::model::metric(FEEDBACK, MetricType::Counter, 1.0),
                crate::model::metric(FEEDBACK_REWARD, MetricType::Counter, reward),
            ],
        );
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let Ok(guard) = self.registry.lock() else {
            return out;
        };
        let _ = prometheus_client::encoding::text::encode(&mut out, &guard.0);
        if guard.1.timers.is_empty() {
            return out;
        }
        let buckets: Vec<String> = guard
            .1
            .timers
            .keys()
            .map(|k| format!("{k}_bucket{{"))
            .collect();
        drop(guard);
        let mut fixed = String::with_capacity(out.len());
        for line in out.lines() {
            if buckets.iter().any(|b| line.starts_with(b.as_str())) {
                fixed.push_str(&python_le(line));
            } else {
                fixed.push_str(line);
            }
            fixed.push('\n');
        }
        fixed
    }
}

/// A bucket line with its `le` written as Python's `repr` writes the bound (the shortest
/// digits that round-trip, `.0` on whole numbers), so the label values are the Python
/// wrapper's, string for string: prometheus_client's float formatting is exact too but may
/// pick other digits (`…694` for `…693`), and Prometheus compares label values as strings.
fn python_le(line: &str) -> String {
    // prometheus_client writes `le` first: `name_bucket{le="…",labels…}`
    let Some(start) = line
        .find("{le=\"")
        .or_else(|| line.rfind(",le=\""))
        .map(|i| i + 5)
    else {
        return line.to_string();
    };
    let Some(len) = line[start..].find('"') else {
        return line.to_string();
    };
    let Ok(bound) = line[start..start + len].parse::<f64>() else {
        return line.to_string();
    };
    if !bound.is_finite() {
        return line.to_string();
    }
    let mut digits = format!("{bound}");
    if !digits.contains(['.', 'e']) {
        digits.push_str(".0");
    }
    format!("{}{digits}{}", &line[..start], &line[start + len..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::metric;

    fn metrics() -> Metrics {
        let mut c = Config::for_tests();
        c.unit_id = "clf".into();
        c.unit_image = "repo/img:1.2".into();
        c.deployment_id = "dep".into();
        Metrics::new(&c)
    }

    #[test]
    fn counters_add_gauges_set_timers_observe_with_seldon_labels() {
        let m = metrics();
        m.record(
            Method::Predict,
            &[metric("mycounter", MetricType::Counter, 1.0)],
        );
        m.record(
            Method::Predict,
            &[metric("mycounter", MetricType::Counter, 2.0)],
        );
        m.record(
            Method::Predict,
            &[metric("mygauge", MetricType::Gauge, 100.0)],
        );
        m.record(
            Method::Predict,
            &[metric("mytimer", MetricType::Timer, 20.0)],
        );
        let text = m.encode();
        let counter = text
            .lines()
            .find(|l| l.starts_with("mycounter_total{"))
            .unwrap();
        assert!(counter.contains("model_name=\"clf\""), "{counter}");
        assert!(counter.contains("model_image=\"repo/img\""), "{counter}");
        assert!(counter.contains("model_version=\"1.2\""), "{counter}");
        assert!(counter.contains("method=\"predict\""), "{counter}");
        assert!(counter.ends_with(" 3.0"), "{counter}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("mygauge{") && l.ends_with(" 100.0")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("mytimer_sum{") && l.ends_with(" 0.02")),
            "{text}"
        );
    }

    #[test]
    fn bucket_bounds_are_written_as_python_writes_them() {
        assert_eq!(
            python_le(r#"t_bucket{le="0.0012341553253454694",method="predict"} 1"#),
            r#"t_bucket{le="0.0012341553253454693",method="predict"} 1"#
        );
        assert_eq!(
            python_le(r#"t_bucket{le="30"} 1"#),
            r#"t_bucket{le="30.0"} 1"#
        );
        for same in [
            r#"t_bucket{a="b",le="+Inf"} 3"#,
            r#"t_bucket{a="b"} 3"#,
            r#"t_bucket{a="b",le="x"} 3"#,
        ] {
            assert_eq!(python_le(same), same);
        }
        let m = metrics();
        m.record(Method::Predict, &[metric("sale", MetricType::Timer, 2.0)]);
        let text = m.encode();
        let le: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("sale_bucket{"))
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        // numpy's repr of np.logspace(-3, np.log10(30), 50), then +Inf
        assert_eq!(
            (le.len(), le[0], le[1], le[3], le[49], le[50]),
            (
                51,
                "0.001",
                "0.0012341553253454693",
                "0.001879790561123359",
                "29.999999999999996",
                "+Inf"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn bad_names_and_type_clashes_are_dropped() {
        let m = metrics();
        m.record(
            Method::Predict,
            &[metric("bad name", MetricType::Counter, 1.0)],
        );
        m.record(
            Method::Predict,
            &[
                metric("k", MetricType::Counter, 1.0),
                metric("k", MetricType::Gauge, 5.0),
            ],
        );
        let text = m.encode();
        assert!(!text.contains("bad name"));
        assert!(!text.lines().any(|l| l.starts_with("k{")), "{text}");
    }

    #[test]
    fn feedback_counts_and_sums_rewards() {
        let m = metrics();
        m.feedback(1.0);
        m.feedback(0.5);
        let text = m.encode();
        assert!(
            text.lines()
                .any(|l| l.starts_with("seldon_api_model_feedback_total{") && l.ends_with(" 2.0")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("seldon_api_model_feedback_reward_total{")
                    && l.ends_with(" 1.5")),
            "{text}"
        );
    }
}
