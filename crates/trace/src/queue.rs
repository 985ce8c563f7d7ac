//! A bounded queue of finished spans, drained in batches by the exporter.

use std::collections::VecDeque;

use crate::span::Span;

/// Finished spans waiting for export. When full, new spans are dropped and counted: the
/// request path never waits on the collector and memory stays bounded.
#[derive(Debug, Clone, Default)]
pub struct SpanQueue {
    spans: VecDeque<Span>,
    capacity: usize,
    dropped: u64,
}

impl SpanQueue {
    /// A queue holding at most `capacity` spans (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            spans: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Queues `span`; `false` (and counted) when the queue is full.
    pub fn push(&mut self, span: Span) -> bool {
        if self.spans.len() >= self.capacity {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.spans.push_back(span);
        true
    }

    /// Up to `max` of the oldest spans.
    pub fn take_batch(&mut self, max: usize) -> Vec<Span> {
        let n = max.min(self.spans.len());
        self.spans.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Spans dropped since the last call (for a counter metric).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{SpanKind, Status};

    fn span(n: u8) -> Span {
        Span {
            trace_id: [n; 16],
            span_id: [n; 8],
            parent_span_id: None,
            name: format!("s{n}"),
            kind: SpanKind::Client,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            attributes: Vec::new(),
            status: Status::Unset,
        }
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let mut q = SpanQueue::new(2);
        assert!(q.push(span(1)));
        assert!(q.push(span(2)));
        assert!(!q.push(span(3)));
        assert!(!q.push(span(4)));
        assert_eq!(q.len(), 2);
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_dropped(), 0);
    }

    #[test]
    fn batches_are_oldest_first_and_bounded() {
        let mut q = SpanQueue::new(10);
        for n in 1..=5 {
            q.push(span(n));
        }
        let names: Vec<String> = q.take_batch(3).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["s1", "s2", "s3"]);
        assert_eq!(q.take_batch(10).len(), 2);
        assert!(q.is_empty());
        assert!(q.take_batch(10).is_empty());
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut q = SpanQueue::new(0);
        assert!(!q.push(span(1)));
        assert_eq!(q.take_dropped(), 1);
    }
}
