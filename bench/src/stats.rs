//! Pure latency statistics: nearest-rank percentiles over microsecond samples.

use serde::Serialize;

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatsError {
    #[error("no successful samples (errors: {errors})")]
    NoSamples { errors: u64 },
}

/// Latency of one side of a comparison, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Successful requests.
    pub count: usize,
    pub errors: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// Successful requests per second of wall time.
    pub rps: f64,
}

/// Nearest-rank percentile (`q` in 0..=1) of an ascending slice; `None` when empty.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// Sorts `samples` (µs) and summarises them; `elapsed_s` is the measured wall time.
pub fn summarize(samples: &mut [u64], errors: u64, elapsed_s: f64) -> Result<Summary, StatsError> {
    samples.sort_unstable();
    let p = |q| {
        percentile(samples, q)
            .map(|v| v as f64)
            .ok_or(StatsError::NoSamples { errors })
    };
    let sum: u128 = samples.iter().map(|&v| u128::from(v)).sum();
    Ok(Summary {
        count: samples.len(),
        errors,
        p50_us: p(0.50)?,
        p90_us: p(0.90)?,
        p99_us: p(0.99)?,
        max_us: p(1.0)?,
        mean_us: sum as f64 / samples.len() as f64,
        rps: if elapsed_s > 0.0 {
            samples.len() as f64 / elapsed_s
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
    }

    #[test]
    fn percentile_of_nothing_is_none() {
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_sorts_and_counts() {
        let mut v = vec![300, 100, 200, 400];
        let s = summarize(&mut v, 2, 2.0).unwrap();
        assert_eq!((s.count, s.errors), (4, 2));
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (200.0, 400.0, 400.0));
        assert_eq!(s.mean_us, 250.0);
        assert_eq!(s.rps, 2.0);
    }

    #[test]
    fn summary_of_only_errors_fails() {
        assert_eq!(
            summarize(&mut [], 3, 1.0),
            Err(StatsError::NoSamples { errors: 3 })
        );
    }
}
