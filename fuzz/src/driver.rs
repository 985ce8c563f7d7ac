//! The stable, in-process driver the replay test uses (CI has no libFuzzer): every corpus file,
//! then inputs from a seeded RNG, mostly mutations of corpus files (libFuzzer-like: bit flips,
//! byte edits, JSON tokens, splices, truncations), some fresh random bytes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Target;

/// splitmix64: tiny, seedable, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Fragments that move JSON/YAML parsers into interesting states.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"-0.0",
    b"2147483648",
    b"18446744073709551616",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"[[",
    b"{\"meta\":",
    b"\"routing\":{",
    b"\"outputs\":[",
    b"\"data\":",
    b"\n- ",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"---\n",
    b"\xff",
    b"\xc3\xa9",
];

/// One mutation of `input`; `corpus` supplies splice partners.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    let at = |rng: &mut Rng, len: usize| rng.below(len + 1);
    match rng.below(8) {
        0 if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] ^= 1 << rng.below(8);
        }
        1 if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = at(rng, out.len());
            let token = TOKENS[rng.below(TOKENS.len())];
            out.splice(i..i, token.iter().copied());
        }
        3 if !out.is_empty() => {
            let i = rng.below(out.len());
            let n = 1 + rng.below((out.len() - i).min(16));
            out.drain(i..i + n);
        }
        4 if !out.is_empty() => {
            // Duplicate a range (repeats members, nests arrays).
            let i = rng.below(out.len());
            let n = 1 + rng.below((out.len() - i).min(64));
            let copy = out[i..i + n].to_vec();
            let j = at(rng, out.len());
            out.splice(j..j, copy);
        }
        5 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let i = at(rng, out.len());
            let j = at(rng, other.len());
            out.truncate(i);
            out.extend_from_slice(&other[j..]);
        }
        6 => {
            let i = at(rng, out.len());
            let n = 1 + rng.below(8);
            let bytes = rng.bytes(n);
            out.splice(i..i, bytes);
        }
        _ => out.truncate(at(rng, out.len())),
    }
    out
}

/// Every file of `dir` (sorted by name), as (name, bytes). A missing folder is empty.
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((name, std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}

/// An input that made the target panic, and the panic's message.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    pub message: String,
}

/// Runs `target` on `input`, catching a panic.
pub fn run_one(target: Target, input: &[u8]) -> Result<(), Crash> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "non-string panic".to_string());
        Crash {
            input: input.to_vec(),
            message,
        }
    })
}

/// What a budget ran.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub inputs: u64,
    pub crashes: Vec<Crash>,
}

/// Runs `target` for `budget` on inputs derived from `corpus` with a seeded RNG; stops at
/// `max_crashes` crashes.
pub fn fuzz_for(
    target: Target,
    corpus: &[Vec<u8>],
    seed: u64,
    budget: Duration,
    max_crashes: usize,
) -> Stats {
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let start = Instant::now();
    while start.elapsed() < budget && stats.crashes.len() < max_crashes {
        // A batch between clock readings.
        for _ in 0..64 {
            let input = if corpus.is_empty() || rng.below(8) == 0 {
                let n = rng.below(256);
                rng.bytes(n)
            } else {
                let mut input = corpus[rng.below(corpus.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    input = mutate(&mut rng, &input, corpus);
                }
                input
            };
            stats.inputs += 1;
            if let Err(crash) = run_one(target, &input) {
                stats.crashes.push(crash);
                break;
            }
        }
    }
    stats
}
