//! Stores with and without rollup tiers, and their bucketed answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config;
use tms_engine::engine::{Config, Engine, FlushScope, QuerySpec};
use tms_engine::query::Agg;
use tms_engine::rollup::Tier;

/// No tiers; partitions of 1.2 s: a multiple of both resolutions.
pub fn plain() -> Config {
    Config {
        partition_duration: 1_200,
        ..config()
    }
}

/// Tiers of 10 and 60 over [`plain`].
pub fn tiered() -> Config {
    Config {
        rollups: vec![
            Tier {
                resolution: 10,
                retention: None,
            },
            Tier {
                resolution: 60,
                retention: None,
            },
        ],
        ..plain()
    }
}

/// Tiers of 10 (kept `retention`) and 100 (forever) over the test config.
pub fn fine_tier_kept(retention: i64) -> Config {
    Config {
        rollups: vec![
            Tier {
                resolution: 10,
                retention: Some(retention),
            },
            Tier {
                resolution: 100,
                retention: None,
            },
        ],
        ..config()
    }
}

/// The wall-clock second 12 s ago, in milliseconds: recent enough for a
/// tier retention of seconds to cut through it.
pub fn twelve_seconds_ago() -> i64 {
    (now_ms() / 1000 - 12) * 1000
}

/// The wall clock in milliseconds, as the engine's clock reads it.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Flushes everything and compacts (which builds tiers).
pub fn settle(engine: &Engine) {
    engine.flush(FlushScope::All).unwrap();
    engine.compact(Duration::ZERO).unwrap();
}

pub type Answer = Vec<(Vec<(String, String)>, Vec<(i64, f64)>)>;

/// The bucketed answer of `m` over `[from, to]`, as label pairs and points.
pub fn answer(
    engine: &Engine,
    from: i64,
    to: i64,
    step: i64,
    agg: Agg,
    grouped: bool,
) -> Result<Answer, String> {
    let spec = QuerySpec {
        step: Some(step),
        agg: Some(agg),
        group_by: grouped.then(Vec::new),
        ..QuerySpec::default()
    };
    let results = engine
        .query("m", &[], from, to, &spec)
        .map_err(|e| e.to_string())?;
    Ok(results
        .into_iter()
        .map(|r| {
            let labels = r
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (labels, r.points.iter().collect())
        })
        .collect())
}
