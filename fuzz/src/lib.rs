//! Structured fuzzing of Detour's boundaries, on the stable toolchain, with
//! proptest's generators and shrinking (`detour-fuzz` runs millions of cases;
//! `tests/smoke.rs` a few thousand per target in CI).
//!
//! Targets:
//! - `requests`: raw bytes — noise, and encodings of structured requests with
//!   byte mutations — into the decoder of every unary and batch RPC, then the
//!   service's validation and answer;
//! - `events`: structured events of every kind through ingest, then the
//!   aggregate arithmetic they fed (every counter and gauge finite) and the
//!   scores of the entities they name;
//! - `csv`: export files, well-formed to mangled, through the trainer's reader;
//! - `artifacts`: manifests and weights, edited and mutated, through the model
//!   loader, and every model it accepts scoring rows with missing values.
//!
//! Every case must end without a panic, with every answer within its range and
//! every refusal a clear error: a status a stock client reads
//! (`INVALID_ARGUMENT`, `NOT_FOUND`) or a report line, naming what is wrong, in
//! at most [`targets::MAX_ERROR_BYTES`].

#![forbid(unsafe_code)]

pub mod inputs;
pub mod targets;

use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

pub use targets::Harness;

/// A fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Raw bytes into every request decoder, then validation.
    Requests,
    /// Events through ingest and the aggregate arithmetic.
    Events,
    /// CSV rows through the trainer's reader.
    Csv,
    /// Artifact JSON through the loader.
    Artifacts,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::Requests,
        Target::Events,
        Target::Csv,
        Target::Artifacts,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Requests => "requests",
            Target::Events => "events",
            Target::Csv => "csv",
            Target::Artifacts => "artifacts",
        }
    }
}

/// What a run of one target did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The target.
    pub target: Target,
    /// Cases run.
    pub cases: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The first failing case, shrunk, and why; `None` when every case passed.
    pub failure: Option<String>,
}

/// Runs up to `cases` cases of `target` (stopping at `until`), from `seed`.
/// `before_case` runs before each case (the binary caps allocation there).
pub fn run(
    harness: &Harness,
    target: Target,
    cases: u32,
    until: Instant,
    seed: u64,
    before_case: &dyn Fn(),
) -> Outcome {
    let began = Instant::now();
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        max_global_rejects: 0,
        ..Config::default()
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8] = target as u8;
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let ran = std::cell::Cell::new(0u64);
    let case = |check: &dyn Fn() -> Result<(), String>| {
        if Instant::now() >= until {
            return Ok(());
        }
        ran.set(ran.get() + 1);
        before_case();
        check().map_err(TestCaseError::fail)
    };
    let failure = match target {
        Target::Requests => failure(runner.run(&inputs::wire_bytes(), |(which, bytes)| {
            case(&|| harness.request_bytes(which, &bytes))
        })),
        Target::Events => failure(runner.run(&inputs::events(), |events| {
            case(&|| harness.events(events.clone()))
        })),
        Target::Csv => failure(runner.run(&inputs::csv_file(), |(which, text)| {
            case(&|| harness.csv(which, &text))
        })),
        Target::Artifacts => failure(runner.run(&inputs::artifact(), |a| {
            case(&|| {
                let mut edits = vec![inputs::ManifestEdit::Learner(a.learner.clone())];
                edits.extend(a.edits.iter().cloned());
                let manifest =
                    |m: &detour::models::Manifest| inputs::manifest_json(m, &edits, &a.mutations);
                harness.artifact(a.kind, &manifest, &a.weights, &a.rows)
            })
        })),
    };
    Outcome {
        target,
        cases: ran.get(),
        elapsed: began.elapsed(),
        failure,
    }
}

/// The first failing case of a run, shrunk, and why.
fn failure<T: std::fmt::Debug>(result: Result<(), TestError<T>>) -> Option<String> {
    match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, input)) => Some(format!("{reason}\nminimal input: {input:?}")),
        Err(TestError::Abort(reason)) => Some(format!("aborted: {reason}")),
    }
}

/// A strategy's values, for tests that look at what the generators make.
pub fn sample<S: Strategy>(strategy: &S, count: usize, seed: u8) -> Vec<S::Value> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a value").current())
        .collect()
}
