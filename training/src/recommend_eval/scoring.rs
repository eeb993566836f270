//! Scores the decisions taken ([`Taken`]) into the three tables: against a
//! simulator's truth ([`score`]), and on a logged history by inverse propensity
//! ([`score_logged`]) and paired on nearby legs ([`score_matched`]).

use std::collections::HashMap;

use super::decision::{Choice, Pick, Taken};
use super::estimators::{
    LoggedResult, LoggedTable, MatchedResult, MatchedTable, PolicyResult, PolicyTable,
};
use super::policy::{Naive, Policy};

/// Realised failure of an option: the real outcome for the plan that happened,
/// otherwise a draw from its true probability, seeded by entity and option.
fn realised(taken: &Taken, choice: &Choice) -> bool {
    if choice.option == taken.actual {
        return taken.actual_failed;
    }
    let seed = format!("{}|{}", taken.entity, choice.option)
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    // SplitMix64 finaliser → uniform in [0, 1).
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < choice.p_fail
}

/// Against the simulator's truth: each policy's option on every decision where
/// every policy that applies picked one of the options, with its realised
/// outcome and cost.
pub(super) fn score(decisions: &[Taken], failure_cost: f64) -> PolicyTable {
    let mut table: PolicyTable = Policy::ALL.map(|p| (p, PolicyResult::default()));
    for taken in decisions {
        let outcome = |choice: &Choice| {
            let failed = realised(taken, choice);
            (
                failed,
                choice.cost + failure_cost * f64::from(u8::from(failed)),
            )
        };
        let hindsight = taken.options.iter().min_by(|a, b| {
            outcome(a)
                .1
                .total_cmp(&outcome(b).1)
                .then(a.cost.total_cmp(&b.cost))
        });
        let Some(chosen) = choices(taken, hindsight) else {
            continue;
        };
        // A policy that does not apply (the whole-history naive on
        // reallocations) leaves its row empty.
        for (slot, choice) in table.iter_mut().zip(chosen) {
            if let Some(choice) = choice {
                let (failed, cost) = outcome(choice);
                slot.1.add(failed, choice.p_fail, cost);
            }
        }
    }
    table
}

/// Each policy's option on a decision, in [`Policy::ALL`] order (None where the
/// policy does not apply); None when one that applies picked no option of it.
fn choices<'a>(taken: &'a Taken, hindsight: Option<&'a Choice>) -> Option<[Option<&'a Choice>; 5]> {
    let find = |code: &str| taken.options.iter().find(|c| c.option == code);
    let mut chosen = [None; 5];
    for (slot, policy) in chosen.iter_mut().zip(Policy::ALL) {
        *slot = match taken.pick(policy) {
            Pick::NotApplicable => continue,
            Pick::Plan => Some(find(&taken.actual)?),
            Pick::Chose(code) => Some(find(code)?),
            Pick::ByOutcome => Some(hindsight?),
        };
    }
    Some(chosen)
}

/// Off-policy scores on a logged history. A policy is scored on the decisions
/// where it chose what was done, each weighted by 1 / the share of its group's
/// decisions that made that choice (the history's own policy, estimated); the
/// current plan is the history itself, unweighted.
pub(super) fn score_logged(decisions: &[Taken], failure_cost: f64) -> LoggedTable {
    let mut used: HashMap<(&str, &str), usize> = HashMap::new();
    let mut total: HashMap<&str, usize> = HashMap::new();
    for t in decisions {
        *used.entry((&t.group, &t.actual)).or_default() += 1;
        *total.entry(&t.group).or_default() += 1;
    }
    let mut table: LoggedTable = Policy::LOGGED.map(|p| (p, LoggedResult::default()));
    for t in decisions {
        let weight =
            total[t.group.as_str()] as f64 / used[&(t.group.as_str(), t.actual.as_str())] as f64;
        let transport = t
            .options
            .iter()
            .find(|c| c.option == t.actual)
            .map_or(f64::NAN, |c| c.cost);
        let cost = transport + failure_cost * f64::from(u8::from(t.actual_failed));
        for (policy, result) in &mut table {
            match t.pick(*policy) {
                // Hindsight is not in a logged table: its picks are unknowable.
                Pick::NotApplicable | Pick::ByOutcome => continue,
                Pick::Plan => result.add(1.0, t.actual_failed, cost),
                Pick::Chose(code) if code == t.actual => result.add(weight, t.actual_failed, cost),
                Pick::Chose(_) => {}
            }
            result.decisions += 1;
        }
    }
    table
}

/// Paired scores on a logged history: every policy on the same decisions, each
/// pick scored by its carrier's nearby legs on the lane (see [`MatchedResult`]).
pub(super) fn score_matched(decisions: &[Taken]) -> MatchedTable {
    let mut table: MatchedTable = Policy::ALL.map(|p| (p, MatchedResult::default()));
    'decisions: for t in decisions {
        if t.nearby.len() < 2 || t.nearby.iter().any(|(_, share)| share.is_none()) {
            continue;
        }
        let share = |code: &str| {
            t.nearby
                .iter()
                .find(|(option, _)| option == code)
                .and_then(|(_, share)| *share)
        };
        let best = t
            .nearby
            .iter()
            .filter_map(|(_, share)| *share)
            .fold(f64::INFINITY, f64::min);
        // Every policy must have a share: one without a whole-history pick (a
        // reallocation) is not paired.
        let mut shares = [0.0; 5];
        for (value, policy) in shares.iter_mut().zip(Policy::ALL) {
            let picked = match t.pick(policy) {
                Pick::Plan => share(&t.actual),
                Pick::Chose(code) => share(code),
                Pick::ByOutcome => Some(best),
                Pick::NotApplicable => None,
            };
            let Some(picked) = picked else {
                continue 'decisions;
            };
            *value = picked;
        }
        let naive = Naive::BOTH.map(|n| shares[n.policy() as usize]);
        let cluster = (t.group.clone(), t.week);
        for ((_, result), value) in table.iter_mut().zip(shares) {
            result.add(value, naive, cluster.clone());
        }
    }
    table
}
