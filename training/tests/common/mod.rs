//! What the trainer's integration tests share: scratch folders, a simulated
//! history and a quick training run.
// Each test crate uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use detour::domain::Timestamp;
use detour_training::boost::BoostSettings;
use detour_training::report::FamilyResult;
use detour_training::simulate::{self, SimSettings};
use detour_training::train::{self, TrainSettings};

/// An empty folder under the system's temp dir, unique to this process.
pub fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detour-{test}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Simulates `days` of history from `start` (RFC 3339) into `out`.
pub fn simulate(seed: u64, start: &str, days: u32, orders_per_day: f64, out: &Path) {
    simulate::run(
        &SimSettings {
            seed,
            start: Timestamp::parse_rfc3339(start).unwrap(),
            days,
            orders_per_day,
            inject_anomalies: false,
        },
        out,
    )
    .unwrap();
}

/// Trains every family `data` supports into `out`, with few trees (fast), as
/// version `version`.
pub fn train_quick(data: &Path, out: &Path, version: &str) -> Vec<FamilyResult> {
    train::run(&TrainSettings {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        until: None,
        sla_grace_minutes: 15.0,
        horizon_hours: 8.0,
        l2: 1.0,
        boost: BoostSettings {
            max_trees: 40,
            ..BoostSettings::default()
        },
        version: Some(version.into()),
        lead_hours: None,
        announced_hours: detour_training::replay::DEFAULT_ANNOUNCED_HOURS,
        alerts: true,
        activate: false,
    })
    .unwrap()
}

/// A committed fixture of `training/examples/byom_fixtures.py`.
pub fn byom_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/byom")
        .join(name)
}

/// A committed fixture's text.
pub fn byom_text(name: &str) -> String {
    std::fs::read_to_string(byom_fixture(name)).unwrap()
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
