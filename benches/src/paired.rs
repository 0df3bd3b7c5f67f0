//! Paired, interleaved ratios: Keyward's path and the bare baseline measured in alternating
//! batches, in this thread's CPU time, so the ratio holds on a machine shared with other
//! work. Criterion measures each side for seconds, one after the other; a compile starting
//! on the other core between the two moves their ratio by more than the 5% being checked.
//! Here each round times one batch of each side back to back (in alternating order) and
//! keeps their ratio; the figure is the median of the rounds' ratios. Thread CPU time counts
//! the work the calls do in this thread (a software token does all of it there), not the
//! time the thread waits for a core.
//!
//! Results go to `<out>/paired/<id>.json` (`median`, `p25`, `p75`, `rounds`, `batch`).

use std::time::Duration;

use anyhow::{Context, Result};
use cpu_time::ThreadTime;
use serde_json::json;

/// Rounds per pair (`KEYWARD_BENCH_ROUNDS`, default 31).
fn rounds() -> usize {
    std::env::var("KEYWARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(31)
        .max(1)
}

fn batch_time(f: &mut dyn FnMut(), n: u32) -> Duration {
    let t = ThreadTime::now();
    for _ in 0..n {
        f();
    }
    t.elapsed()
}

/// Measures `keyward` against `bare` and writes the result under `id`.
pub fn compare(id: &str, keyward: &mut dyn FnMut(), bare: &mut dyn FnMut()) -> Result<()> {
    // Warm both, then size a batch to about 10 ms of CPU.
    batch_time(keyward, 3);
    let one = batch_time(bare, 3) / 3;
    let batch = u32::try_from(
        (Duration::from_millis(10).as_nanos() / one.as_nanos().max(1)).clamp(1, 10_000),
    )
    .unwrap_or(1);
    let mut ratios = Vec::with_capacity(rounds());
    for round in 0..rounds() {
        let (k, b) = if round % 2 == 0 {
            let k = batch_time(keyward, batch);
            (k, batch_time(bare, batch))
        } else {
            let b = batch_time(bare, batch);
            (batch_time(keyward, batch), b)
        };
        ratios.push(k.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE));
    }
    ratios.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let i = ((ratios.len() - 1) as f64 * p).round() as usize;
        ratios.get(i).copied().unwrap_or(f64::NAN)
    };
    let doc = json!({
        "id": id,
        "median": q(0.5),
        "p25": q(0.25),
        "p75": q(0.75),
        "rounds": ratios.len(),
        "batch": batch,
        "clock": "thread CPU time",
    });
    let dir = crate::out_dir()?.join("paired");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.json", id.replace('/', "_")));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "{id}: paired ratio {:.3} (IQR {:.3}–{:.3}, {} rounds of {batch})",
        q(0.5),
        q(0.25),
        q(0.75),
        ratios.len()
    );
    Ok(())
}
