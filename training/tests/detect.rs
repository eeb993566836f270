//! `detour-train detect` end to end: a CSV of interleaved series in, the same
//! rows with scores and alerts out; an injected build-up alerts, ordinary
//! points do not; bad input names its line.

use std::path::PathBuf;

use detour::anomaly::Direction;
use detour_training::detect::{DetectSettings, run};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detour-detect-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn settings(dir: &std::path::Path) -> DetectSettings {
    DetectSettings {
        series: dir.join("in.csv"),
        out: dir.join("out.csv"),
        threshold: 0.999,
        direction: Direction::Up,
        min_history: 48,
    }
}

#[test]
fn a_build_up_alerts_and_ordinary_points_do_not() {
    let dir = scratch("spike");
    let mut csv = String::from("series_id,timestamp,value,note\n");
    // Two sites, hourly, a daily cycle of queue counts; site B builds up at
    // hour 500 for three hours.
    for hour in 0..600u32 {
        let day_hour = hour % 24;
        let usual = if (8..18).contains(&day_hour) { 20 } else { 5 };
        let noise = (hour * 7 + 3) % 5;
        let a = usual + noise;
        let b = if (500..503).contains(&hour) {
            4 * usual + 30
        } else {
            usual + (hour * 3) % 4
        };
        let time = 1_767_225_600 + i64::from(hour) * 3600;
        let at = chrono::DateTime::from_timestamp(time, 0).unwrap();
        // One series in RFC 3339, the other in the plain form.
        csv.push_str(&format!("A,{},{a},x\n", at.to_rfc3339()));
        csv.push_str(&format!("B,{},{b},y\n", at.format("%Y-%m-%d %H:%M:%S")));
    }
    std::fs::write(dir.join("in.csv"), csv).unwrap();
    let report = run(&settings(&dir)).unwrap();
    assert_eq!((report.rows, report.series), (1200, 2));
    let mut reader = csv::Reader::from_path(dir.join("out.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "series_id",
            "timestamp",
            "value",
            "note",
            "anomaly_score",
            "alert"
        ]
    );
    let mut alerts = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.unwrap();
        let score: f64 = row[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
        if &row[5] == "1" {
            alerts.push((row[0].to_string(), i / 2));
        }
    }
    assert!(alerts.contains(&("B".to_string(), 500)), "{alerts:?}");
    assert!(
        alerts
            .iter()
            .all(|(s, h)| s == "B" && (500..503).contains(h)),
        "only the build-up alerts: {alerts:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_rows_are_refused_naming_the_line() {
    let dir = scratch("bad");
    for (body, says) in [
        (
            "series_id,timestamp,value\nA,2026-01-01T00:00:00Z,1\nA,yesterday,2\n",
            "line 3: timestamp",
        ),
        (
            "series_id,timestamp,value\nA,2026-01-01T00:00:00Z,many\n",
            "line 2: value",
        ),
        (
            "series,timestamp,value\nA,2026-01-01T00:00:00Z,1\n",
            "no `series_id` column",
        ),
    ] {
        std::fs::write(dir.join("in.csv"), body).unwrap();
        let error = run(&settings(&dir)).unwrap_err();
        assert!(format!("{error:#}").contains(says), "{error:#}");
    }
    // A row earlier than its series' latest is scored and counted, not
    // refused (real exports step back at clock changes).
    std::fs::write(
        dir.join("in.csv"),
        "series_id,timestamp,value\nA,2026-01-01T01:00:00Z,1\nA,2026-01-01T00:00:00Z,2\nA,2026-01-01T02:00:00Z,3\n",
    )
    .unwrap();
    let report = run(&settings(&dir)).unwrap();
    assert_eq!(
        (report.rows, report.out_of_order, report.first_out_of_order),
        (3, 1, Some(3))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
