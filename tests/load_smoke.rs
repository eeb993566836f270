//! Benchmark smoke: the load generator drives a real server for a moment in
//! every mode and reports no errors, so it keeps compiling and working. (The
//! full side-by-side run is `bench/side_by_side.sh`, not a test.)

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_load_generator_drives_every_rpc_without_errors() {
    let (url, _redis) = shared_redis();
    let server = TestServer::start(config(Some(url), &unique_namespace("load"))).await;
    let _ = server.channel().await;
    let network = models_dir().join("network.toml");
    for (mode, batch) in [
        ("health", 1),
        ("unary", 1),
        ("batch", 20),
        ("stream", 20),
        ("ingest", 20),
        ("reroute", 1),
        ("reallocate", 1),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_detour-load"))
            .args([
                "--target",
                &server.addr.to_string(),
                "--mode",
                mode,
                "--json",
            ])
            .args(["--concurrency", "2", "--requests", "200", "--duration", "2"])
            .args(["--warmup", "0", "--batch", &batch.to_string()])
            .arg("--network")
            .arg(&network)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["errors"], 0, "{mode}: {report}");
        assert!(report["requests"].as_u64().unwrap() > 0, "{mode}: {report}");
        assert!(report["p99_us"].as_f64().unwrap() > 0.0, "{mode}: {report}");
    }
}
