//! The whole tick path in-process: the real sandbox and the built-in
//! `default` handler, with a fake clock, a recording sink and an
//! in-memory store in place of the machine's clock, the bus and the
//! state file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use heartbeat_core::model::RunStatus;
use heartbeat_core::processes::{Tracker, TrackerConfig};
use heartbeat_core::state::State;
use tokio::sync::oneshot;

use super::*;
use crate::publish::Receipt;
use crate::runtime::RuntimeOptions;
use crate::source::TickDone;
use crate::store::state::Saved;

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;

struct FakeClock(AtomicU64);

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves as the fake wall clock does: it never steps.
    fn monotonic_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the sink saw: (tick, check, status, events emitted).
type Published = Vec<(String, String, RunStatus, usize)>;

/// Records every finished run; when `gate` holds a receiver, the next
/// publish takes it and waits until the test sends on it (a slow broker).
#[derive(Default)]
struct RecordingSink {
    runs: Mutex<Published>,
    /// Each run's (state, attempt, change kind) as the sink got it.
    verdicts: Mutex<Vec<(String, u32, Option<&'static str>)>>,
    gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Sink for RecordingSink {
    fn publish(&self, run: FinishedRun<'_>) -> Receipt {
        let gate = self.gate.lock().expect("gate").take();
        if let Some(gate) = gate {
            let _ = gate.recv_timeout(std::time::Duration::from_secs(10));
        }
        self.runs.lock().expect("runs").push((
            run.tick.id.clone(),
            run.check.name.clone(),
            run.report.status,
            run.report.events.len(),
        ));
        self.verdicts.lock().expect("verdicts").push((
            run.verdict.state.to_string(),
            run.verdict.attempt,
            run.verdict.change.as_ref().map(|c| c.kind.as_str()),
        ));
        Receipt::done()
    }
}

/// Keeps every snapshot it is handed, durable at once.
#[derive(Default)]
struct MemoryStore(Mutex<Vec<State>>);

impl Store for MemoryStore {
    fn persist(&self, snapshot: State) -> Saved {
        self.0.lock().expect("snapshots").push(snapshot);
        let (done, wait) = oneshot::channel();
        let _ = done.send(Ok(()));
        wait
    }
}

/// What the observer was told: each plan's selected count, and each run
/// as (check, status, state change kind).
#[derive(Default)]
struct RecordingObserver {
    plans: Mutex<Vec<usize>>,
    runs: Mutex<Vec<(String, RunStatus, Option<&'static str>)>>,
}

impl Observer for RecordingObserver {
    fn tick_planned(&self, plan: &schedule::Plan) {
        self.plans.lock().expect("plans").push(plan.selected.len());
    }

    fn run_recorded(
        &self,
        _agent: &str,
        _tick: &Tick,
        check: &CheckConfig,
        report: &RunReport,
        verdict: &Verdict,
    ) {
        self.runs.lock().expect("runs").push((
            check.name.clone(),
            report.status,
            verdict.change.as_ref().map(|c| c.kind.as_str()),
        ));
    }
}

struct Harness {
    pipeline: Arc<Pipeline>,
    clock: Arc<FakeClock>,
    sink: Arc<RecordingSink>,
    store: Arc<MemoryStore>,
    observer: Arc<RecordingObserver>,
}

fn runtime() -> (Arc<Runtime>, Arc<Registry>) {
    static SHARED: OnceLock<(Arc<Runtime>, Arc<Registry>)> = OnceLock::new();
    let (runtime, registry) = SHARED.get_or_init(|| {
        let runtime = Arc::new(
            Runtime::new(&RuntimeOptions {
                cache_dir: None,
                pooling: true,
                ..RuntimeOptions::default()
            })
            .expect("runtime"),
        );
        let registry = Arc::new(Registry::with_builtins(&runtime).expect("built-ins"));
        (runtime, registry)
    });
    (Arc::clone(runtime), Arc::clone(registry))
}

fn harness(config: &str) -> Harness {
    let config = heartbeat_core::config::parse(config, "heartbeat.json")
        .expect("valid config")
        .config;
    let (runtime, registry) = runtime();
    let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
    let sink = Arc::new(RecordingSink::default());
    let store = Arc::new(MemoryStore::default());
    let observer = Arc::new(RecordingObserver::default());
    let pipeline = Arc::new(Pipeline::new(PipelineParts {
        agent: "cack".into(),
        config,
        config_dir: PathBuf::from("."),
        handlers_dir: None,
        state: State::default(),
        runtime,
        registry,
        store: Arc::clone(&store) as Arc<dyn Store>,
        sink: Arc::clone(&sink) as Arc<dyn Sink>,
        health: Arc::new(Health::default()),
        tracker: Arc::new(Mutex::new(Tracker::new(TrackerConfig::default()))),
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        kv: None,
        max_runs: None,
        observer: Arc::clone(&observer) as Arc<dyn Observer>,
    }));
    Harness {
        pipeline,
        clock,
        sink,
        store,
        observer,
    }
}

impl Harness {
    /// Sends one tick at `at_ms` through the pipeline and waits for it;
    /// returns whether the tick was answered as handled.
    async fn tick(&self, id: &str, at_ms: u64) -> bool {
        self.clock.0.store(at_ms, Ordering::SeqCst);
        let (answered, answer) = oneshot::channel();
        let tick = Tick {
            id: id.into(),
            time_ms: at_ms,
            envelope: serde_json::json!({"event_id": id}),
            done: Some(TickDone::new(move |handled| {
                let _ = answered.send(handled);
            })),
        };
        Arc::clone(&self.pipeline).handle(tick).await;
        answer.await.expect("answered")
    }

    fn runs(&self) -> Published {
        self.sink.runs.lock().expect("runs").clone()
    }
}

fn run(tick: &str, check: &str, status: RunStatus) -> (String, String, RunStatus, usize) {
    (tick.into(), check.into(), status, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_gets_each_runs_state_and_the_one_change_to_publish() {
    // A handler that does not exist fails every run: soft, then hard.
    let h = harness(
        r#"{"checks": {"gone": {"handler": "no_such_handler", "cadenceMs": 60000,
            "maxAttempts": 2, "retryIntervalMs": 1000}}}"#,
    );
    assert!(h.tick("t1", T0).await);
    assert!(h.tick("t2", T0 + 500).await, "within the retry interval");
    assert!(h.tick("t3", T0 + 1_000).await);
    assert!(h.tick("t4", T0 + 2_000).await, "hard: waits the cadence");
    let verdicts = h.sink.verdicts.lock().expect("verdicts").clone();
    assert_eq!(
        verdicts,
        [
            ("soft".to_string(), 1, None),
            ("hard".to_string(), 2, Some("transition"))
        ]
    );
    let record = h.pipeline.state().checks["gone"].clone();
    assert_eq!(record.state, heartbeat_core::model::CheckHealth::Hard);
    assert_eq!(record.retry_after, Some(T0 + 1_000 + 60_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_is_told_every_plan_and_every_run_before_the_tick_is_answered() {
    let h = harness(
        r#"{"maxPerTick": 2, "checks": {"gone": {"handler": "no_such_handler",
            "cadenceMs": 60000, "maxAttempts": 1}, "fine": {"cadenceMs": 60000}}}"#,
    );
    assert!(h.tick("t1", T0).await);
    assert!(h.tick("t2", T0 + 1).await, "nothing due");
    assert_eq!(*h.observer.plans.lock().expect("plans"), [2, 0]);
    let mut runs = h.observer.runs.lock().expect("runs").clone();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        runs,
        [
            ("fine".to_string(), RunStatus::Success, None),
            ("gone".to_string(), RunStatus::Failed, Some("transition")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_check_runs_its_handler_and_its_outcome_reaches_the_state_and_the_sink() {
    let h = harness(
        r#"{"checks": {
            "fresh": {"cadenceMs": 3600000, "lastRun": 1767225000000},
            "stale": {"cadenceMs": 60000, "lastRun": 1767225000000}}}"#,
    );
    assert!(h.tick("t1", T0).await, "the tick is answered as handled");
    assert_eq!(h.runs(), [run("t1", "stale", RunStatus::Success)]);
    let state = h.pipeline.state();
    let stale = &state.checks["stale"];
    assert_eq!(stale.last_run, Some(T0));
    assert_eq!(stale.last_status, Some(RunStatus::Success));
    assert!(!state.checks.contains_key("fresh"), "{state:?}");
    let snapshots = h.store.0.lock().expect("snapshots").clone();
    assert_eq!(
        snapshots.last(),
        Some(&state),
        "the store has what the pipeline holds"
    );
    assert!(h.pipeline.running().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_backs_off_and_runs_again_once_the_backoff_ends() {
    let h = harness(r#"{"checks": {"ghost": {"cadenceMs": 600000, "handler": "no_such"}}}"#);
    assert!(h.tick("t1", T0).await);
    let state = h.pipeline.state();
    let ghost = &state.checks["ghost"];
    assert_eq!(ghost.consecutive_failures, 1);
    assert_eq!(ghost.retry_after, Some(T0 + 30_000));
    assert!(
        ghost
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("\"no_such\" not found")),
        "{ghost:?}"
    );
    assert!(
        h.tick("t2", T0 + 10_000).await,
        "a tick that runs nothing is answered too"
    );
    assert!(h.tick("t3", T0 + 31_000).await);
    assert_eq!(
        h.runs(),
        [
            run("t1", "ghost", RunStatus::Failed),
            run("t3", "ghost", RunStatus::Failed)
        ]
    );
    let ghost = &h.pipeline.state().checks["ghost"];
    assert_eq!(ghost.consecutive_failures, 2);
    assert_eq!(ghost.retry_after, Some(T0 + 31_000 + 60_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_per_tick_runs_the_most_overdue_and_leaves_the_rest_for_later() {
    let h = harness(
        r#"{"maxPerTick": 2, "checks": {
            "least": {"cadenceMs": 60000, "lastRun": 1767225500000},
            "most": {"cadenceMs": 60000, "lastRun": 1767225000000},
            "middle": {"cadenceMs": 60000, "lastRun": 1767225300000}}}"#,
    );
    assert!(h.tick("t1", T0).await);
    let mut checks: Vec<String> = h.runs().into_iter().map(|(_, c, _, _)| c).collect();
    checks.sort();
    assert_eq!(checks, ["middle", "most"]);
    assert!(!h.pipeline.state().checks.contains_key("least"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_check_whose_run_is_in_flight_is_not_selected_again() {
    let h = harness(r#"{"checks": {"always": {"cadenceMs": 0}}}"#);
    let (release, gate) = std::sync::mpsc::channel();
    *h.sink.gate.lock().expect("gate") = Some(gate);
    let first = {
        let pipeline = Arc::clone(&h.pipeline);
        tokio::spawn(pipeline.handle(Tick {
            id: "slow".into(),
            time_ms: T0,
            envelope: serde_json::json!({}),
            done: None,
        }))
    };
    // The first run has ended in the sandbox and is held at the sink.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.sink.gate.lock().expect("gate").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(h.pipeline.running().contains("always"));
    assert_eq!(h.pipeline.ticks_held_back(), 0);
    assert!(h.tick("while-running", T0 + 1).await);
    // drop-in item 5: counted as held back, not as "no check due".
    assert_eq!(h.pipeline.ticks_held_back(), 1);
    assert!(
        h.runs().is_empty(),
        "the second tick ran the check again: {:?}",
        h.runs()
    );
    release.send(()).expect("release");
    first.await.expect("first tick");
    assert!(h.tick("after", T0 + 2).await);
    assert_eq!(
        h.runs(),
        [
            run("slow", "always", RunStatus::Success),
            run("after", "always", RunStatus::Success)
        ]
    );
}

#[test]
fn a_tick_held_back_by_a_run_in_flight_says_which_and_since_when() {
    let config = heartbeat_core::config::parse(
        r#"{"checks": {"keepalive": {"cadenceMs": 0}, "later": {"cadenceMs": 3600000, "lastRun": 1767225600000}}}"#,
        "heartbeat.json",
    )
    .expect("valid")
    .config;
    let running: HashSet<String> = ["keepalive".to_string()].into();
    let plan = schedule::plan(&config, &State::default(), &running, T0 + 1);
    assert!(plan.selected.is_empty());
    let started_on: HashMap<String, String> =
        [("keepalive".to_string(), "t-41".to_string())].into();
    assert_eq!(
        still_running(&plan, &config, &started_on),
        ["keepalive still running since tick t-41"]
    );
    let idle = schedule::plan(&config, &State::default(), &HashSet::new(), T0 + 1);
    assert!(still_running(&idle, &config, &HashMap::new()).is_empty());
}
