//! Latency distributions, for figures whose target is a median or a percentile of single
//! events (a key plugged in, one CA request). Each sample is one event timed on its own;
//! the result is written as `<out>/<name>.json` for `cargo xtask bench`.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

/// Samples of one figure, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    /// No samples yet.
    pub fn new() -> Self {
        Samples::default()
    }

    /// Records one event.
    pub fn push(&mut self, d: Duration) {
        self.ns
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many events were recorded.
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    /// The `p`-th percentile (0–100), nearest rank; `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let mut v = self.ns.clone();
        v.sort_unstable();
        percentile_of_sorted(&v, p)
    }

    /// Writes `<out>/<name>.json`: the samples, count, median, p95, p99, min and max (ns),
    /// and what was measured.
    pub fn write(&self, name: &str, what: &str, extra: serde_json::Value) -> Result<()> {
        let mut v = self.ns.clone();
        v.sort_unstable();
        let doc = json!({
            "name": name,
            "what": what,
            "unit": "ns",
            "count": v.len(),
            "median": percentile_of_sorted(&v, 50.0),
            "p95": percentile_of_sorted(&v, 95.0),
            "p99": percentile_of_sorted(&v, 99.0),
            "min": v.first(),
            "max": v.last(),
            "samples": self.ns,
            "extra": extra,
        });
        let path = crate::out_dir()?.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "{name}: n={} median={:.2} ms p95={:.2} ms",
            v.len(),
            ms(percentile_of_sorted(&v, 50.0)),
            ms(percentile_of_sorted(&v, 95.0)),
        );
        Ok(())
    }
}

fn ms(ns: Option<u64>) -> f64 {
    ns.map_or(f64::NAN, |n| n as f64 / 1e6)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile_of_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// A small deterministic generator for jitter, so runs are repeatable.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded; every seed gives its own sequence (xorshift's state must not be zero, so zero
    /// stands for a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        Jitter(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// A duration uniformly in `[0, max)`.
    pub fn next(&mut self, max: Duration) -> Duration {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(r % max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_of_sorted(&v, 50.0), Some(50));
        assert_eq!(percentile_of_sorted(&v, 95.0), Some(95));
        assert_eq!(percentile_of_sorted(&v, 100.0), Some(100));
        assert_eq!(percentile_of_sorted(&v, 0.0), Some(1));
        assert_eq!(percentile_of_sorted(&[], 50.0), None);
        assert_eq!(percentile_of_sorted(&[7], 95.0), Some(7));
    }

    /// The hot-plug bench relies on its waits landing at every phase of the watcher's period,
    /// the same ones on every run: uniform over the range, and repeatable from the seed.
    #[test]
    fn jitter_is_repeatable_and_spread_over_its_range() {
        let max = Duration::from_millis(10);
        let draws = |seed| {
            let mut j = Jitter::new(seed);
            (0..10_000).map(|_| j.next(max)).collect::<Vec<_>>()
        };
        let a = draws(42);
        assert!(a == draws(42), "the same seed gives the same waits");
        for other in [0, 43] {
            assert!(a != draws(other), "seed {other} gives the waits of seed 42");
        }
        // Ten equal bins of the range each get a tenth of the draws (1000, σ ≈ 30).
        let mut bins = [0u32; 10];
        for d in &a {
            assert!(*d < max, "{d:?}");
            bins[(d.as_nanos() * 10 / max.as_nanos()) as usize] += 1;
        }
        assert!(bins.iter().all(|&n| (850..=1150).contains(&n)), "{bins:?}");
    }
}
