//! Every fuzz target for a few thousand cases, as CI runs them
//! (`bench/fuzz.sh` runs millions): no failure, and the generators reach past
//! the first check often enough to test what lies behind it.

use std::path::Path;
use std::time::{Duration, Instant};

use detour_fuzz::{Harness, Target};

const CASES: u32 = 2_000;

#[test]
fn every_target_passes_a_few_thousand_cases_and_reaches_deep() {
    // The generators nest deeply; an unoptimised build needs more stack than
    // a test thread's default.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(fuzz_every_target)
        .unwrap()
        .join()
        .unwrap();
}

fn fuzz_every_target() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let scratch = std::env::temp_dir().join(format!("detour-fuzz-smoke-{}", std::process::id()));
    let harness = Harness::new(&models, &scratch).unwrap();
    let until = Instant::now() + Duration::from_secs(600);
    for target in Target::ALL {
        let outcome = detour_fuzz::run(&harness, target, CASES, until, 7, &|| {});
        assert_eq!(outcome.failure, None, "{}", target.name());
        assert_eq!(outcome.cases, u64::from(CASES), "{}", target.name());
    }
    let tally = harness.tally();
    let count = |what: &str| tally.get(what).copied().unwrap_or(0);
    // A fair share of each kind of case gets past decoding and validation.
    for (what, at_least) in [
        ("request: answered", 500),
        ("request: INVALID_ARGUMENT", 500),
        ("request: NOT_FOUND", 200),
        ("event: accepted", 1_000),
        ("csv: some rows accepted", 500),
        ("artifact: loaded", 50),
        ("artifact: refused", 500),
    ] {
        assert!(
            count(what) >= at_least,
            "{what}: {} in {tally:?}",
            count(what)
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
