//! The sampling decision for a trace the filter starts (no incoming sampled flag).
//!
//! Deterministic from the trace id, as OpenTelemetry's `TraceIdRatioBased`: the low 8 bytes of
//! the id, shifted right by one, are compared with `ratio · 2⁶³`. Every service that uses the
//! same rule and ratio keeps or drops the same traces.

use thiserror::Error;

/// A ratio outside [0, 1] (or not a number).
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[error("sample ratio must be a number between 0 and 1, got {0}")]
pub struct RatioError(pub f64);

/// Checks a configured ratio.
pub fn check_ratio(ratio: f64) -> Result<f64, RatioError> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(RatioError(ratio))
    }
}

/// Whether a new trace with this id is sampled at `ratio` (1 keeps all, 0 none; out-of-range
/// ratios are clamped).
pub fn sample_by_ratio(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    if ratio >= 1.0 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    x < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low: u64) -> [u8; 16] {
        u128::from(low).to_be_bytes()
    }

    #[test]
    fn ends_of_the_range() {
        assert!(sample_by_ratio(&id(u64::MAX), 1.0));
        assert!(!sample_by_ratio(&id(0), 0.0));
        assert!(!sample_by_ratio(&id(0), f64::NAN));
    }

    #[test]
    fn decided_by_the_low_bits_of_the_id() {
        // bound for 0.5 is 2^62: x = low >> 1
        assert!(sample_by_ratio(&id((1u64 << 63) - 2), 0.5));
        assert!(!sample_by_ratio(&id(1u64 << 63), 0.5));
        // the high half does not matter
        let mut high = id(0);
        high[0] = 0xff;
        assert!(sample_by_ratio(&high, 0.01));
    }

    #[test]
    fn about_the_ratio_over_many_ids() {
        let kept = (0u64..10_000)
            .filter(|i| sample_by_ratio(&id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), 0.25))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
    }

    #[test]
    fn ratio_checked() {
        assert_eq!(check_ratio(0.5), Ok(0.5));
        assert_eq!(check_ratio(0.0), Ok(0.0));
        assert_eq!(check_ratio(1.0), Ok(1.0));
        assert!(check_ratio(1.5).is_err());
        assert!(check_ratio(-0.1).is_err());
        let err = check_ratio(f64::NAN).unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
    }
}
