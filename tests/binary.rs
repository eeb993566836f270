//! The `detour` binary as an operator runs it: starts with no flags but an
//! address, reports where it listens, answers health, and exits 0 on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_answers_then_exits_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_detour"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--models")
        .arg(common::models_dir())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    let mut lines = stderr.lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.find("address=") {
            let rest = &line[at + "address=".len()..];
            address = Some(rest.split_whitespace().next().unwrap().to_string());
            break;
        }
        assert!(Instant::now() < deadline, "no 'serving' line");
    }
    let address = address.expect("the server logs its address");
    // Drain the rest of stderr so the child never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    });

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = drain.join().unwrap().join("\n");
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("NOT_SERVING"), "shutdown is logged:\n{log}");
}

#[test]
fn bad_settings_fail_before_listening() {
    let output = Command::new(env!("CARGO_BIN_EXE_detour"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            "localhost:6379",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("redis://"), "{stderr}");
}
