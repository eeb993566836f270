//! Two `detour serve` processes on one private Redis, each with its own copy
//! of the model repository: a version deployed through one reaches the other
//! through Redis (state and artifact), changes through either serve on both,
//! a restarted replica comes back with the current state, and a replica that
//! loses Redis keeps serving and says its registry is stale.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lifecycle::{Admin, TOKEN, active_version, answering_version, repo_copy, variant};
use common::{RedisServer, free_port, unique_namespace};
use detour::pb;
use detour::schema::RiskKind;
use tonic::Code;
use tonic::transport::Channel;

const CARRIER: RiskKind = RiskKind::CarrierFailure;

/// How long a change may take to reach the other replica here: the issue
/// asks for one second (the poll is every 250 ms); the slack is for a busy
/// test machine, and the bench script measures the real figure.
const PROPAGATION: Duration = Duration::from_secs(2);

struct Replica {
    child: Child,
    port: u16,
}

impl Replica {
    fn start(repo: &Path, redis: &str, namespace: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_detour"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--redis", redis, "--namespace", namespace])
            .arg("--models")
            .arg(repo)
            .env("DETOUR_ADMIN_TOKEN", TOKEN)
            .env("DETOUR_REDIS_TIMEOUT_MS", "200")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the detour binary starts");
        Replica { child, port }
    }

    async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let endpoint = Channel::from_shared(format!("http://127.0.0.1:{}", self.port)).unwrap();
            match endpoint.connect().await {
                Ok(channel) => return channel,
                Err(e) => {
                    assert!(Instant::now() < deadline, "replica did not come up: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `check` holds on `admin`'s view, returning how long it took.
async fn until(
    admin: &mut Admin,
    what: &str,
    check: impl Fn(&pb::FamilyModels) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if check(&admin.family(CARRIER).await) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION,
            "{what}: not seen within {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_redis_agree_and_a_restarted_one_comes_back_with_the_current_state() {
    let mut redis = RedisServer::start();
    let namespace = unique_namespace("registry");
    let repo_a = repo_copy("replica-a");
    let repo_b = repo_copy("replica-b");
    let v1 = active_version(&repo_a, CARRIER);
    let v2_dir = variant(&repo_a, CARRIER, "v2-shared", 1.0, |_| {});

    let mut a = Replica::start(&repo_a, &redis.url(), &namespace);
    let b = Replica::start(&repo_b, &redis.url(), &namespace);
    let mut admin_a = Admin::new(a.channel().await, Some(TOKEN));
    let mut admin_b = Admin::new(b.channel().await, Some(TOKEN));
    assert_eq!(admin_a.list().await.unwrap().backend, "redis");

    // Deployed through A, the artifact travels through Redis: B's own
    // repository never sees it.
    admin_a.deploy_dir(&v2_dir).await.unwrap();
    let took = until(&mut admin_b, "deploy on B", |f| {
        f.versions
            .iter()
            .any(|v| v.version == "v2-shared" && v.state == "loaded")
    })
    .await;
    eprintln!("deploy through A listed and loaded on B after {took:?}");
    assert!(!repo_b.join("carrier_failure/v2-shared").exists());

    // A canary set through B answers on A.
    admin_b.canary(CARRIER, "v2-shared", 100.0).await.unwrap();
    until(&mut admin_a, "canary on A", |f| f.candidate == "v2-shared").await;
    let mut scoring_a = pb::risk_scoring_client::RiskScoringClient::new(a.channel().await);
    assert_eq!(
        answering_version(&mut scoring_a, "leg-1")
            .await
            .model_version,
        "v2-shared"
    );

    // Promoted through B, rolled back through A: both follow.
    admin_b.promote(CARRIER, "v2-shared").await.unwrap();
    until(&mut admin_a, "promote on A", |f| f.active == "v2-shared").await;
    admin_a.rollback(CARRIER).await.unwrap();
    until(&mut admin_b, "rollback on B", |f| f.active == v1).await;
    let mut scoring_b = pb::risk_scoring_client::RiskScoringClient::new(b.channel().await);
    assert_eq!(
        answering_version(&mut scoring_b, "leg-2")
            .await
            .model_version,
        v1
    );
    admin_b.promote(CARRIER, "v2-shared").await.unwrap();
    until(&mut admin_a, "promote again on A", |f| {
        f.active == "v2-shared"
    })
    .await;

    // A restarts: its own state.json still says v1; Redis says v2.
    a.kill();
    let a = Replica::start(&repo_a, &redis.url(), &namespace);
    let mut admin_a = Admin::new(a.channel().await, Some(TOKEN));
    let family = admin_a.family(CARRIER).await;
    assert_eq!(
        family.active, "v2-shared",
        "a restarted replica takes the shared state"
    );
    assert_eq!(family.previous, vec![v1.clone()]);
    let mut scoring_a = pb::risk_scoring_client::RiskScoringClient::new(a.channel().await);
    assert_eq!(
        answering_version(&mut scoring_a, "leg-3")
            .await
            .model_version,
        "v2-shared"
    );

    // Redis goes away: A keeps serving what it has loaded, says the
    // registry is stale, and refuses changes it could not share.
    redis.stop();
    let started = Instant::now();
    loop {
        let list = admin_a.list().await.unwrap();
        if list.registry_stale {
            assert!(!list.stale_reason.is_empty());
            break;
        }
        assert!(started.elapsed() < PROPAGATION, "stale not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = answering_version(&mut scoring_a, "leg-4").await;
    assert_eq!(answer.model_version, "v2-shared");
    let e = admin_a.rollback(CARRIER).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(admin_a.family(CARRIER).await.active, "v2-shared");
    drop(b);
    let _ = std::fs::remove_dir_all(&repo_a);
    let _ = std::fs::remove_dir_all(&repo_b);
}
