//! What serde_json's `float_roundtrip` feature costs and fixes (docs/fuzzing.md): times the
//! filter's strict entry check (`seldon_executor::entry_check::json_kind`, which decodes every
//! number as a node would) on 1 MiB v1 bodies of short, integer and 17-digit numbers, and
//! counts random doubles that do not read back as themselves after `serde_json` prints them.
//!
//! ```sh
//! cargo run --release -p seldon-fuzz --example float_cost
//! cargo run --release -p seldon-fuzz --example float_cost --features serde_json/float_roundtrip
//! ```

use std::time::Instant;

fn body(numbers: impl Iterator<Item = String>) -> Vec<u8> {
    let mut out = String::from(r#"{"data":{"ndarray":[["#);
    for (i, n) in numbers.enumerate() {
        if out.len() > 1 << 20 {
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&n);
    }
    out.push_str("]]}}");
    out.into_bytes()
}

/// A small deterministic generator (xorshift64*), so both builds see the same numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A double in [0, 1) with all 53 bits random: prints with 16-17 significant digits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let bodies = [
        (
            "short (`5.1`-like)",
            body((0..).map(|i| format!("{}.{}", i % 10, i % 7))),
        ),
        (
            "integers",
            body((0..).map(|i: u64| (i * 7919 % 100_000).to_string())),
        ),
        (
            "17-digit doubles",
            body(std::iter::repeat_with(|| {
                serde_json::to_string(&rng.unit()).unwrap_or_default()
            })),
        ),
    ];
    for (what, b) in &bodies {
        // warm up, then the best of 5 rounds of 20 checks
        let _ = seldon_executor::entry_check::json_kind(b);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..20 {
                assert!(seldon_executor::entry_check::json_kind(b).is_ok());
            }
            best = best.min(t.elapsed().as_secs_f64() * 1000.0 / 20.0);
        }
        let mib = b.len() as f64 / f64::from(1u32 << 20);
        println!(
            "{what:>20}: {:.2} ms per MiB (body {} bytes)",
            best / mib,
            b.len()
        );
    }
    let mut rng = Rng(42);
    let n = 1_000_000;
    let drift = (0..n)
        .filter(|_| {
            let x = rng.unit() * 10f64.powi((rng.next() % 40) as i32 - 20);
            let text = serde_json::to_string(&x).unwrap_or_default();
            serde_json::from_str::<f64>(&text).ok() != Some(x)
        })
        .count();
    println!("doubles that do not read back as themselves: {drift} of {n}");
}
