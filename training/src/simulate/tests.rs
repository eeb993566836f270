//! Unit tests of the simulator's parts: windows and profiles, and a short run
//! end to end (its files, their headers, one history per seed).

use std::path::PathBuf;

use detour::domain::Timestamp;

use super::draws::{Episodes, shift_share, weekly_profile};
use super::{SimSettings, run};

/// An empty folder under the system's temp dir, unique to this process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detour-sim-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn an_episode_applies_from_its_start_until_before_its_end() {
    let episodes = Episodes {
        windows: vec![
            vec![
                (Timestamp(10), Timestamp(20), 1),
                (Timestamp(30), Timestamp(40), 0),
            ],
            Vec::new(),
        ],
        factors: vec![0.5, 2.0],
    };
    assert_eq!(episodes.factor(0, Timestamp(9)), 1.0);
    assert_eq!(episodes.factor(0, Timestamp(10)), 2.0);
    assert_eq!(episodes.factor(0, Timestamp(19)), 2.0);
    assert_eq!(episodes.factor(0, Timestamp(20)), 1.0);
    assert_eq!(episodes.factor(0, Timestamp(35)), 0.5);
    assert_eq!(episodes.factor(1, Timestamp(15)), 1.0);
}

#[test]
fn shifts_and_weekdays_shape_the_hours() {
    assert_eq!(shift_share(5.9), 0.45);
    assert_eq!(shift_share(6.0), 1.0);
    assert_eq!(shift_share(14.0), 0.9);
    assert_eq!(shift_share(22.0), 0.45);
    assert!(weekly_profile(6) < weekly_profile(5) && weekly_profile(5) < weekly_profile(0));
}

#[test]
fn a_seed_gives_one_history_in_every_file() {
    let settings = |seed| SimSettings {
        seed,
        start: Timestamp::parse_rfc3339("2026-03-02T00:00:00Z").unwrap(),
        days: 2,
        orders_per_day: 400.0,
        inject_anomalies: false,
    };
    let files = [
        "network.toml",
        "orders.csv",
        "shipments.csv",
        "site_metrics.csv",
        "truth_shipments.csv",
        "truth_reroutes.csv",
        "truth_reallocations.csv",
    ];
    let read = |dir: &PathBuf| files.map(|f| std::fs::read_to_string(dir.join(f)).unwrap());
    let (a, b, c) = (scratch("a"), scratch("b"), scratch("c"));
    let summary = run(&settings(3), &a).unwrap();
    run(&settings(3), &b).unwrap();
    run(&settings(4), &c).unwrap();
    let (first, again, other) = (read(&a), read(&b), read(&c));
    assert_eq!(first, again, "the same seed writes the same files");
    assert_ne!(first[1], other[1], "another seed, another history");

    let [
        _,
        orders,
        shipments,
        metrics,
        truth,
        reroutes,
        reallocations,
    ] = &first;
    let header = |text: &str| text.lines().next().unwrap_or_default().to_string();
    assert!(
        header(orders).starts_with("order_id,"),
        "{}",
        header(orders)
    );
    assert!(header(shipments).starts_with("shipment_id,"));
    assert!(header(metrics).starts_with("site,"));
    assert_eq!(header(truth), "shipment_id,p_fail");
    assert_eq!(
        header(reroutes),
        "shipment_id,carrier,rate,transit_hours,p_fail"
    );
    assert_eq!(header(reallocations), "order_id,site,cost,p_fallout");
    // Every order, shipment and snapshot counted is a row, and every shipment
    // has its truth.
    assert_eq!(orders.lines().count() - 1, summary.orders);
    assert_eq!(shipments.lines().count() - 1, summary.shipments);
    assert_eq!(truth.lines().count() - 1, summary.shipments);
    assert_eq!(metrics.lines().count() - 1, summary.snapshots);
    // Eight sites, 48 hours.
    assert_eq!(summary.snapshots, 8 * 48);
    for dir in [a, b, c] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
