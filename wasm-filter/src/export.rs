//! Span export, the pure part: the per-VM queue that request contexts fill and the root
//! context drains into OTLP/HTTP POSTs on its tick (the glue does the hostcalls).

use std::time::Duration;

use seldon_graph::Tracing;
use seldon_trace::{CONTENT_TYPE, Span, SpanQueue, encode_export};

/// Longest time between the root context's ticks while tracing is on.
pub const MAX_TICK: Duration = Duration::from_millis(100);

/// The root context's tick for tracing: `flushIntervalMs`, but at most [`MAX_TICK`], so a
/// full batch leaves within 100 ms instead of waiting for the interval. With a tick of one
/// second, 1000 requests/s of a 3-node graph (4000 spans/s) overflowed the default queue of
/// 2048 between two ticks (seldon-bench scenario (d)).
pub fn tick_period(config: &Tracing) -> Duration {
    Duration::from_millis(config.flush_interval_ms).min(MAX_TICK)
}

/// One export POST, ready for `dispatch_http_call`.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub cluster: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Spans in the body (counted as exported when the collector answers 2xx).
    pub spans: usize,
}

/// The spans of one VM (one Envoy worker) waiting for export.
#[derive(Debug)]
pub struct Exporter {
    config: Tracing,
    queue: SpanQueue,
    /// Time (ns) of the last flush.
    last_flush_ns: u64,
}

impl Exporter {
    pub fn new(config: Tracing) -> Self {
        let capacity = usize::try_from(config.max_queue_spans).unwrap_or(usize::MAX);
        Self {
            queue: SpanQueue::new(capacity),
            config,
            last_flush_ns: 0,
        }
    }

    /// Queues a finished span; `false` when the queue is full (the span is dropped).
    pub fn push(&mut self, span: Span) -> bool {
        self.queue.push(span)
    }

    /// Spans dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        self.queue.take_dropped()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// On a tick at `now_ns`: every queued span in POSTs of at most `batchSpans`, once
    /// `flushIntervalMs` passed since the last flush or a whole batch is waiting; else none.
    pub fn due(&mut self, now_ns: u64) -> Vec<Export> {
        let batch = usize::try_from(self.config.batch_spans)
            .unwrap_or(usize::MAX)
            .max(1);
        let interval_ns = self.config.flush_interval_ms.saturating_mul(1_000_000);
        let waited = now_ns.saturating_sub(self.last_flush_ns) >= interval_ns;
        if self.queue.is_empty() || !(waited || self.queue.len() >= batch) {
            return Vec::new();
        }
        self.last_flush_ns = now_ns;
        let mut out = Vec::new();
        while !self.queue.is_empty() {
            let spans = self.queue.take_batch(batch);
            out.push(self.export(&spans));
        }
        out
    }

    fn export(&self, spans: &[Span]) -> Export {
        let c = &self.config;
        Export {
            cluster: c.cluster.clone(),
            headers: vec![
                (":method", "POST".into()),
                (":path", c.path.clone()),
                (":authority", c.authority.clone()),
                ("content-type", CONTENT_TYPE.into()),
            ],
            body: encode_export(&c.service_name, spans),
            timeout: Duration::from_millis(c.timeout_ms),
            spans: spans.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seldon_trace::{SpanKind, Status};

    fn span(n: u8) -> Span {
        Span {
            trace_id: [1; 16],
            span_id: [n; 8],
            parent_span_id: None,
            name: format!("s{n}"),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: Vec::new(),
            status: Status::Unset,
        }
    }

    fn exporter(queue: u32, batch: u32) -> Exporter {
        let mut t = Tracing::new("otlp", "collector:4318");
        t.max_queue_spans = queue;
        t.batch_spans = batch;
        t.flush_interval_ms = 1000;
        t.service_name = "svc".into();
        Exporter::new(t)
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn flushes_every_interval_in_batches() {
        let mut e = exporter(10, 2);
        assert!(e.due(5 * S).is_empty(), "nothing queued, nothing sent");
        e.push(span(1));
        let first = e.due(5 * S);
        assert_eq!(first.len(), 1, "the first tick after a while flushes");
        assert_eq!(first[0].spans, 1);
        e.push(span(2));
        assert!(e.due(5 * S + S / 2).is_empty(), "waits for the interval");
        let later = e.due(6 * S);
        assert_eq!(later.len(), 1);
        for n in 3..=7 {
            e.push(span(n));
        }
        // a full batch is waiting: no need to wait for the interval
        let sizes: Vec<usize> = e.due(6 * S + 1).iter().map(|x| x.spans).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(e.queued(), 0);
    }

    #[test]
    fn post_has_the_configured_target_and_an_otlp_body() {
        let mut e = exporter(10, 10);
        e.push(span(1));
        let x = e.due(S).pop().unwrap();
        assert_eq!(x.cluster, "otlp");
        assert_eq!(
            x.headers,
            vec![
                (":method", "POST".to_string()),
                (":path", "/v1/traces".to_string()),
                (":authority", "collector:4318".to_string()),
                ("content-type", "application/x-protobuf".to_string()),
            ]
        );
        assert_eq!(x.timeout, Duration::from_millis(5000));
        assert!(x.body.windows(3).any(|w| w == b"svc"));
        assert!(x.body.windows(2).any(|w| w == b"s1"));
    }

    #[test]
    fn the_tick_is_the_interval_up_to_100_ms() {
        let mut t = Tracing::new("otlp", "c:4318");
        assert_eq!(tick_period(&t), MAX_TICK, "default interval 1 s");
        t.flush_interval_ms = 20;
        assert_eq!(tick_period(&t), Duration::from_millis(20));
    }

    #[test]
    fn a_full_batch_leaves_on_the_next_tick_not_after_the_interval() {
        // 4000 spans/s, ticks every 100 ms, interval 1 s, batch 512, queue 2048: every tick
        // sends what a batch holds once one is waiting, so the queue never overflows
        let mut e = exporter(2048, 512);
        let mut sent = 0;
        let mut now = 10 * S;
        e.due(now);
        for _tick in 0..30 {
            for n in 0..400 {
                assert!(e.push(span((n % 200) as u8)), "dropped at {now}");
            }
            now += S / 10;
            sent += e.due(now).iter().map(|x| x.spans).sum::<usize>();
        }
        assert_eq!(e.take_dropped(), 0);
        assert!(e.queued() < 1024, "{}", e.queued());
        assert_eq!(sent + e.queued(), 30 * 400);
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let mut e = exporter(2, 10);
        assert!(e.push(span(1)));
        assert!(e.push(span(2)));
        assert!(!e.push(span(3)));
        assert_eq!(e.take_dropped(), 1);
        assert_eq!(e.take_dropped(), 0);
        assert_eq!(e.due(S).iter().map(|x| x.spans).sum::<usize>(), 2);
    }
}
