//! Property tests of the pure selection ([`crate::schedule`]): random
//! configs (built through the real parser), states, pauses and runs in
//! flight, checked against the selection rules of issue 3.

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use serde_json::json;

use crate::config::{self, HeartbeatConfig};
use crate::schedule::{self, Plan, Ratio, backoff_ms, minute_in_window, plan};
use crate::state::{CheckState, State};

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;

/// One generated check and what the host has recorded about it.
#[derive(Debug, Clone)]
struct Spec {
    /// Small set, so that equal ratios (ties) are common.
    cadence_ms: u64,
    /// How long before `now` the file's lastRun is.
    file_age_ms: u64,
    /// How long before `now` the state's lastRun is, if it has one.
    state_age_ms: Option<u64>,
    priority: i64,
    enabled: bool,
    /// None: not paused; Some(None): paused until resumed; Some(Some(d)): until now + d.
    pause: Option<Option<i64>>,
    running: bool,
    /// Retry-after relative to now, with the failures so far.
    backoff: Option<(i64, u32)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec![0u64, 1_000, 2_000, 5_000, 60_000]),
        (0u64..=20).prop_map(|k| k * 1_000),
        prop::option::weighted(0.3, (0u64..=20).prop_map(|k| k * 1_000)),
        -2i64..=2,
        prop::bool::weighted(0.9),
        prop::option::weighted(0.15, prop::option::of(-5_000i64..5_000)),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.15, (-5_000i64..5_000, 1u32..4)),
    )
        .prop_map(
            |(
                cadence_ms,
                file_age_ms,
                state_age_ms,
                priority,
                enabled,
                pause,
                running,
                backoff,
            )| {
                Spec {
                    cadence_ms,
                    file_age_ms,
                    state_age_ms,
                    priority,
                    enabled,
                    pause,
                    running,
                    backoff,
                }
            },
        )
}

/// A whole scenario: checks in file order, maxPerTick, the tick's time.
#[derive(Debug, Clone)]
struct Scenario {
    specs: Vec<Spec>,
    max_per_tick: usize,
    now_ms: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(spec(), 0..12),
        1usize..4,
        0u64..=86_400_000,
    )
        .prop_map(|(specs, max_per_tick, offset)| Scenario {
            specs,
            max_per_tick,
            now_ms: T0 + offset,
        })
}

fn name(i: usize) -> String {
    format!("c{i:02}")
}

fn offset(now: u64, delta: i64) -> u64 {
    now.saturating_add_signed(delta)
}

/// The config, through the parser the host uses, with checks in `order`
/// (indices into `specs`) and `paused` entries written in `pause_order`.
fn config_of(s: &Scenario, order: &[usize], pause_order: &[usize]) -> HeartbeatConfig {
    let mut checks = serde_json::Map::new();
    for &i in order {
        let spec = &s.specs[i];
        checks.insert(
            name(i),
            json!({
                "cadenceMs": spec.cadence_ms,
                "lastRun": s.now_ms - spec.file_age_ms,
                "priority": spec.priority,
                "enabled": spec.enabled,
            }),
        );
    }
    let mut paused = serde_json::Map::new();
    for &i in pause_order {
        match s.specs[i].pause {
            None => {}
            Some(None) => {
                paused.insert(name(i), json!(true));
            }
            Some(Some(delta)) => {
                paused.insert(name(i), json!({"until": offset(s.now_ms, delta)}));
            }
        }
    }
    let text = json!({
        "$schema": "heartbeat.v1",
        "maxPerTick": s.max_per_tick,
        "checks": checks,
        "paused": paused,
    })
    .to_string();
    config::parse(&text, "prop.json")
        .expect("generated config is valid")
        .config
}

/// The state and the runs in flight, with entries inserted in `order`.
fn state_of(s: &Scenario, order: &[usize]) -> (State, HashSet<String>) {
    let mut state = State::default();
    let mut running = HashSet::new();
    for &i in order {
        let spec = &s.specs[i];
        if spec.state_age_ms.is_some() || spec.backoff.is_some() {
            state.checks.insert(
                name(i),
                CheckState {
                    last_run: spec.state_age_ms.map(|age| s.now_ms - age),
                    consecutive_failures: spec.backoff.map_or(0, |(_, n)| n),
                    retry_after: spec.backoff.map(|(d, _)| offset(s.now_ms, d)),
                    ..CheckState::default()
                },
            );
        }
        if spec.running {
            running.insert(name(i));
        }
    }
    (state, running)
}

fn in_file_order(s: &Scenario) -> (HeartbeatConfig, State, HashSet<String>) {
    let all: Vec<usize> = (0..s.specs.len()).collect();
    let config = config_of(s, &all, &all);
    let (state, running) = state_of(s, &all);
    (config, state, running)
}

fn selected_names(config: &HeartbeatConfig, p: &Plan) -> Vec<String> {
    p.selected
        .iter()
        .map(|&i| config.checks[i].name.clone())
        .collect()
}

/// Rule 1, written out independently from the spec.
fn eligible(s: &Scenario, i: usize) -> bool {
    let spec = &s.specs[i];
    let paused = match spec.pause {
        None => false,
        Some(None) => true,
        Some(Some(delta)) => s.now_ms < offset(s.now_ms, delta),
    };
    let backing_off = spec
        .backoff
        .is_some_and(|(d, _)| s.now_ms < offset(s.now_ms, d));
    spec.enabled && !paused && !spec.running && !backing_off
}

/// Rule 2's ratio, from the spec.
fn ratio_of(s: &Scenario, i: usize) -> f64 {
    let spec = &s.specs[i];
    let age = spec.state_age_ms.unwrap_or(spec.file_age_ms);
    if spec.cadence_ms == 0 {
        f64::INFINITY
    } else {
        age as f64 / spec.cadence_ms as f64
    }
}

/// Rules 1 and 2 as a straightforward model: due checks, most overdue
/// first, then lower priority, then file order; the first maxPerTick.
fn model(s: &Scenario) -> Vec<String> {
    let mut due: Vec<usize> = (0..s.specs.len())
        .filter(|&i| eligible(s, i) && ratio_of(s, i) > 1.0)
        .collect();
    due.sort_by(|&a, &b| {
        ratio_of(s, b)
            .total_cmp(&ratio_of(s, a))
            .then(s.specs[a].priority.cmp(&s.specs[b].priority))
            .then(a.cmp(&b))
    });
    due.into_iter().take(s.max_per_tick).map(name).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn selection_matches_the_rules_written_out(s in scenario()) {
        let (config, state, running) = in_file_order(&s);
        let p = plan(&config, &state, &running, s.now_ms);
        prop_assert_eq!(selected_names(&config, &p), model(&s));
    }

    #[test]
    fn a_non_due_or_ineligible_check_is_never_selected(s in scenario()) {
        let (config, state, running) = in_file_order(&s);
        let p = plan(&config, &state, &running, s.now_ms);
        for &i in &p.selected {
            prop_assert!(eligible(&s, i), "{} selected but not eligible", name(i));
            prop_assert!(ratio_of(&s, i) > 1.0, "{} selected with ratio {}", name(i), ratio_of(&s, i));
            prop_assert!(p.checks[i].not_running.is_none());
        }
    }

    #[test]
    fn priority_never_beats_a_higher_ratio(s in scenario()) {
        let (config, state, running) = in_file_order(&s);
        let p = plan(&config, &state, &running, s.now_ms);
        // Run order: ratios never increase; within equal ratios, priorities never decrease.
        for pair in p.selected.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (ra, rb) = (p.checks[a].ratio.value(), p.checks[b].ratio.value());
            prop_assert!(ra >= rb, "{} (ratio {}) ran before {} (ratio {})", name(a), ra, name(b), rb);
            if ra == rb {
                prop_assert!(config.checks[a].priority <= config.checks[b].priority);
            }
        }
        // A due check left out never has a higher ratio than one that runs.
        let chosen: BTreeSet<usize> = p.selected.iter().copied().collect();
        for e in p.checks.iter().filter(|e| e.is_due() && !chosen.contains(&e.index)) {
            for &s_i in &p.selected {
                prop_assert!(
                    e.ratio.value() <= p.checks[s_i].ratio.value(),
                    "{} (ratio {}) left out for {} (ratio {})",
                    name(e.index), e.ratio.value(), name(s_i), p.checks[s_i].ratio.value()
                );
            }
        }
    }

    #[test]
    fn as_many_run_as_are_due_up_to_max_per_tick(s in scenario()) {
        let (config, state, running) = in_file_order(&s);
        let p = plan(&config, &state, &running, s.now_ms);
        let due = p.checks.iter().filter(|e| e.is_due()).count();
        prop_assert_eq!(p.selected.len(), due.min(s.max_per_tick));
        let mut unique = p.selected.clone();
        unique.dedup();
        prop_assert_eq!(unique.len(), p.selected.len());
    }

    #[test]
    fn selection_depends_on_file_order_only_not_on_load_order(
        s in scenario(),
        seed in any::<u64>(),
    ) {
        let all: Vec<usize> = (0..s.specs.len()).collect();
        let shuffled = shuffle(&all, seed);
        // Same file order; state records, pauses and runs in flight loaded in another order.
        let reference = {
            let (config, state, running) = in_file_order(&s);
            selected_names(&config, &plan(&config, &state, &running, s.now_ms))
        };
        let config = config_of(&s, &all, &shuffled);
        let (state, running) = state_of(&s, &shuffled);
        let again = selected_names(&config, &plan(&config, &state, &running, s.now_ms));
        prop_assert_eq!(&again, &reference);

        // Another file order changes nothing unless two due checks tie on
        // ratio and priority, and then the one first in the file runs first.
        let reordered = config_of(&s, &shuffled, &shuffled);
        let (state, running) = state_of(&s, &shuffled);
        let got = selected_names(&reordered, &plan(&reordered, &state, &running, s.now_ms));
        let mut permuted = s.clone();
        permuted.specs = shuffled.iter().map(|&i| s.specs[i].clone()).collect();
        let expected: Vec<String> = model(&permuted)
            .iter()
            .map(|n| name(shuffled[n[1..].parse::<usize>().expect("index")]))
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn a_due_check_stays_due_as_time_passes(s in scenario(), later in 0u64..10_000_000) {
        let (config, state, running) = in_file_order(&s);
        let now = plan(&config, &state, &running, s.now_ms);
        let then = plan(&config, &state, &running, s.now_ms + later);
        for e in now.checks.iter().filter(|e| e.ratio.is_due()) {
            prop_assert!(then.checks[e.index].ratio.is_due());
        }
    }

    #[test]
    fn a_window_and_its_complement_split_the_day(
        start in 0u16..1440,
        end in 0u16..1440,
        minute in 0u16..1440,
    ) {
        prop_assume!((end + 1) % 1440 != start, "the window is the whole day");
        let inside = minute_in_window(minute, start, end);
        let outside = minute_in_window(minute, (end + 1) % 1440, (start + 1439) % 1440);
        prop_assert!(inside != outside, "minute {} in [{}, {}]: {} / complement {}", minute, start, end, inside, outside);
    }

    #[test]
    fn backoff_doubles_and_never_exceeds_the_cadence(cadence in 0u64..10_000_000, failures in 1u32..80) {
        let step = backoff_ms(cadence, failures);
        prop_assert!(step <= cadence);
        prop_assert!(backoff_ms(cadence, failures + 1) >= step);
        let uncapped = u128::from(schedule::BACKOFF_BASE_MS) << (failures - 1);
        prop_assert_eq!(u128::from(step), uncapped.min(u128::from(cadence)));
    }
}

/// A deterministic shuffle (Fisher–Yates on a xorshift stream).
fn shuffle(items: &[usize], mut seed: u64) -> Vec<usize> {
    let mut out = items.to_vec();
    seed |= 1;
    for i in (1..out.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = usize::try_from(seed % (i as u64 + 1)).unwrap_or(0);
        out.swap(i, j);
    }
    out
}

#[test]
fn the_model_sees_ties_broken_by_priority_then_file_order() {
    // Pins the model itself: equal ratios, priorities 2, 1, 1.
    let base = Spec {
        cadence_ms: 1_000,
        file_age_ms: 5_000,
        state_age_ms: None,
        priority: 2,
        enabled: true,
        pause: None,
        running: false,
        backoff: None,
    };
    let s = Scenario {
        specs: vec![
            base.clone(),
            Spec {
                priority: 1,
                ..base.clone()
            },
            Spec {
                priority: 1,
                ..base
            },
        ],
        max_per_tick: 3,
        now_ms: T0,
    };
    assert_eq!(model(&s), ["c01", "c02", "c00"]);
    let (config, state, running) = in_file_order(&s);
    let p = plan(&config, &state, &running, s.now_ms);
    assert_eq!(selected_names(&config, &p), ["c01", "c02", "c00"]);
    assert!(matches!(p.checks[0].ratio, Ratio::Finite(r) if r == 5.0));
}
