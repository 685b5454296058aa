//! Crash recovery against a real Kafka broker (`SLUICE_KAFKA_BROKERS`, started by
//! `scripts/test.sh`) and real RocksDB.
//!
//! A child process (this test binary, running `crash_child`) reads orders from a 4-partition
//! topic with 6 workers (two own no partition) and watermark alignment (partitions paused and
//! resumed on the consumer), sums revenue per product in 1-minute event-time windows on
//! RocksDB state with a checkpoint every second, and writes every window result to an output
//! topic. The input also holds orders a day behind the rest (late: they
//! must never open a window, before or after a restore) and undecodable records (each must
//! reach the dead-letter topic exactly once, however often the job crashes around it). The
//! parent kills the child with SIGKILL at random moments, or makes it abort at a named step of
//! completing a checkpoint, and starts it again on the same state directory until it
//! finishes. Everything written to the output topic over all runs must then hold every window
//! of the batch computation over the on-time orders with its exact value: a lost record, a
//! record counted twice or a late record accepted changes a sum or adds a window. Windows
//! written again after a restart (the sink is at-least-once) are counted and reported.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::kafka::{Fixture, brokers, orders, produce_batched, read_topic, unique};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};
use sluice::engine::{CheckpointConfig, StateBackendConfig, list_checkpoints};
use sluice::kafka::{JsonRecord, KafkaConfig, KafkaSink, KafkaSource, StartFrom, ensure_topic};
use sluice::prelude::*;
use sluice_cli::datagen::Order;

const CHILD_ENV: &str = "SLUICE_CRASH_CHILD";

/// What the child runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildSpec {
    brokers: String,
    input: String,
    output: String,
    dead_letters: String,
    state_dir: String,
    group: String,
}

/// Workers of the child job: more than the input topic's 4 partitions.
const CHILD_WORKERS: usize = 6;

/// A day, in milliseconds: how far behind the late orders are.
const DAY: i64 = 86_400_000;

/// What the input topic holds.
struct Input {
    fixtures: Vec<Fixture>,
    /// The orders that are on time.
    on_time: Vec<Order>,
    late: usize,
    poison: usize,
}

/// `count` orders; after the first fifth (when every partition has long delivered), every
/// 997th position also holds an order a day old and every 1 999th an undecodable record.
fn input(count: u64) -> Input {
    let on_time = orders(count);
    let (mut fixtures, mut late, mut poison) = (Vec::new(), 0, 0);
    for (i, o) in on_time.iter().enumerate() {
        fixtures.push((Some(o.product_id.clone()), serde_json::to_vec(o).expect("json")));
        if i >= on_time.len() / 5 && i % 997 == 0 {
            let mut old = o.clone();
            old.order_id = format!("late-{i}");
            old.ts -= DAY;
            fixtures.push((
                Some(old.product_id.clone()),
                serde_json::to_vec(&old).expect("json"),
            ));
            late += 1;
        }
        if i >= on_time.len() / 5 && i % 1_999 == 0 {
            fixtures.push((
                Some(o.product_id.clone()),
                format!("not an order {i}").into_bytes(),
            ));
            poison += 1;
        }
    }
    Input {
        fixtures,
        on_time,
        late,
        poison,
    }
}

/// One window result as the job writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Revenue {
    product_id: String,
    window_start: i64,
    revenue_cents: i64,
}

fn expected(orders: &[Order]) -> BTreeMap<(String, i64), i64> {
    let mut rows = BTreeMap::new();
    for o in orders {
        *rows
            .entry((o.product_id.clone(), o.ts - o.ts.rem_euclid(60_000)))
            .or_insert(0) += o.revenue_cents();
    }
    rows
}

/// The job of the child process. Does nothing unless started by a parent test.
#[test]
#[ignore = "the child process of the crash tests; started by them"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let spec: ChildSpec = serde_json::from_str(&spec).expect("child spec");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let state = Path::new(&spec.state_dir);
    let config = JobConfig::new("crash-revenue")
        .workers(CHILD_WORKERS)
        .state_backend(StateBackendConfig::rocksdb(state.join("rocksdb")))
        .checkpoints(CheckpointConfig::new(state.join("checkpoints")).interval(Duration::from_secs(1)))
        // As a deployment would: a failure a restart may mend (a broker that stalled past a
        // flush's wait) restarts the job from its last checkpoint, which must change nothing.
        .restart_strategy(RestartStrategy::backoff(5, Duration::from_secs(1)));
    let kafka = KafkaConfig::new(&spec.brokers);
    let job = Job::new(config, move |b| {
        // Partitions are assigned by the source, not the group: a killed run's consumers need
        // not time out first. The group names the job in the dead-letter topic.
        let source = KafkaSource::<Order>::json(kafka.clone(), spec.group.clone(), &[spec.input.as_str()])
            .start_from(StartFrom::Earliest)
            .on_bad_record(OnBadRecord::DeadLetter(spec.dead_letters.clone()))
            .exit_when_idle(Duration::from_secs(10));
        let sink = KafkaSink::new(
            kafka.clone(),
            spec.output.clone(),
            JsonRecord::keyed_by(|r: &Revenue| Some(r.product_id.clone())),
        );
        // Aligned: no partition runs ahead of one that has not delivered yet, so the late
        // orders are late whichever reader starts first.
        b.source(
            "orders",
            source,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts)
                .with_alignment(Duration::from_secs(60)),
        )
        .key_by("by_product", |o| o.product_id.clone())
        .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate(Sum::of(|o: &Order| o.revenue_cents()))
        .map("row", |w| Revenue {
            product_id: w.key,
            window_start: w.window.start,
            revenue_cents: w.value,
        })
        .sink("revenue", sink);
        Ok(())
    })
    .expect("job");
    let report = job.run().expect("child job");
    let m = &report.metrics;
    eprintln!(
        "child: read {} orders, {} late, {} dead-lettered, wrote {} windows",
        m.total("orders", "records_out"),
        m.total("revenue_1m", "late_records"),
        m.total("orders", "dead_lettered"),
        m.total("revenue", "records_in")
    );
}

/// Starts the child on `spec`, aborting at `fail_point` if given.
fn spawn(spec: &ChildSpec, fail_point: Option<&str>) -> Child {
    let spec = spec.clone();
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "crash_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, serde_json::to_string(&spec).expect("spec"))
    .env_remove("SLUICE_FAIL_POINT")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if let Some(point) = fail_point {
        cmd.env("SLUICE_FAIL_POINT", point);
    }
    cmd.spawn().expect("start child")
}

fn wait(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newest complete checkpoint in `state_dir`, if any.
fn latest_checkpoint(state_dir: &Path) -> Option<u64> {
    let dir = state_dir.join("checkpoints");
    if !dir.exists() {
        return None;
    }
    list_checkpoints(&dir)
        .expect("list checkpoints")
        .iter()
        .filter(|c| c.manifest.is_ok())
        .map(|c| c.id)
        .max()
}

/// Prints the offsets the next run restores from checkpoint `id` of `state_dir`.
fn report_restore(label: &str, state_dir: &Path, id: Option<u64>) {
    let Some(id) = id else {
        return;
    };
    let found = list_checkpoints(&state_dir.join("checkpoints"))
        .expect("list checkpoints")
        .into_iter()
        .find(|c| c.id == id)
        .expect("the checkpoint just listed");
    eprintln!(
        "{label}: restoring offsets {:?}",
        found.manifest.map(|m| m.offsets)
    );
}

/// Everything in `topic`, read until nothing arrives for `quiet`.
fn read_all(brokers: &str, topic: &str, quiet: Duration) -> Vec<Revenue> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("crash-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(serde_json::from_slice(m.payload().unwrap_or_default()).expect("result JSON"));
            last = Instant::now();
        }
    }
    out
}

/// Checks the results of all runs against the batch computation; returns how many were
/// written more than once.
fn check(results: &[Revenue], expected: &BTreeMap<(String, i64), i64>) -> usize {
    let mut seen: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut repeated = 0;
    for r in results {
        let key = (r.product_id.clone(), r.window_start);
        if let Some(prev) = seen.insert(key, r.revenue_cents) {
            assert_eq!(
                prev, r.revenue_cents,
                "window {} @ {} written with two sums: records lost or counted twice",
                r.product_id, r.window_start
            );
            repeated += 1;
        }
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter_map(|(k, v)| seen.get(k).filter(|got| *got != v).map(|got| (k, *v, *got)))
        .collect();
    let unexpected: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    let extra = unexpected.len();
    assert!(
        missing.is_empty() && wrong.is_empty() && extra == 0,
        "{} windows missing (first: {:?}), {} with a wrong sum (first (window, expected, got): {:?}), \
         {extra} unexpected (first: {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        wrong.len(),
        wrong.iter().take(3).collect::<Vec<_>>(),
        unexpected.iter().take(3).collect::<Vec<_>>()
    );
    repeated
}

/// A scenario: its input topic filled with `orders`, and a fresh output topic and state.
fn scenario(brokers: &str, name: &str, input: &str) -> (ChildSpec, TempDir) {
    let config = KafkaConfig::new(brokers);
    let output = unique(&format!("{name}-out"));
    ensure_topic(&config, &output, 2).expect("output topic");
    let dead_letters = unique(&format!("{name}-dlq"));
    ensure_topic(&config, &dead_letters, 1).expect("dead-letter topic");
    let state = TempDir::new(name);
    let spec = ChildSpec {
        brokers: brokers.to_string(),
        input: input.to_string(),
        output,
        dead_letters,
        state_dir: state.0.display().to_string(),
        group: unique(name),
    };
    (spec, state)
}

fn input_topic(brokers: &str, name: &str, input: &Input) -> String {
    let topic = unique(name);
    ensure_topic(&KafkaConfig::new(brokers), &topic, 4).expect("input topic");
    let started = Instant::now();
    produce_batched(brokers, &topic, &input.fixtures, 500);
    eprintln!(
        "produced {} records ({} late, {} undecodable) in {:?}",
        input.fixtures.len(),
        input.late,
        input.poison,
        started.elapsed()
    );
    topic
}

/// Every undecodable record reached the dead-letter topic, once.
fn check_dead_letters(brokers: &str, spec: &ChildSpec, poison: usize) {
    let dead = read_topic(brokers, &spec.dead_letters, usize::MAX, Duration::from_secs(10));
    let mut origins: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            let header = |k: &str| {
                d.headers
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (header("sluice.partition"), header("sluice.offset"))
        })
        .collect();
    let written = origins.len();
    origins.sort();
    origins.dedup();
    assert_eq!(origins.len(), poison, "every undecodable record is dead-lettered");
    assert_eq!(written, poison, "a record was dead-lettered twice");
}

/// A small deterministic random number generator (xorshift64*), so runs can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice() {
    let brokers = brokers();
    let count = std::env::var("SLUICE_CRASH_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let kills_wanted = std::env::var("SLUICE_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let made = input(count);
    let expected = expected(&made.on_time);
    let input = input_topic(&brokers, "crash-in", &made);

    // A clean run first: it must match, and it tells how long a run takes.
    let (clean, clean_state) = scenario(&brokers, "crash-clean", &input);
    let started = Instant::now();
    let mut child = spawn(&clean, None);
    let mut first_checkpoint = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("status") {
            break status;
        }
        if first_checkpoint.is_none() && latest_checkpoint(&clean_state.0).is_some() {
            first_checkpoint = Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(900) {
            // A hung child would outlive the test.
            let _ = child.kill();
            panic!("the clean run did not finish within 900 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean run failed: {status}");
    let total = started.elapsed();
    let startup = first_checkpoint.expect("the clean run completed a checkpoint");
    check(
        &read_all(&brokers, &clean.output, Duration::from_secs(5)),
        &expected,
    );
    check_dead_letters(&brokers, &clean, made.poison);
    let work = total.saturating_sub(startup);
    eprintln!("clean run: {total:?} (first checkpoint after {startup:?})");

    // Kill runs at random moments until 10 kills happened, then let one finish.
    let (spec, state) = scenario(&brokers, "crash-kill", &input);
    let mut rng = Rng(0x5EED_CAFE);
    let (mut kills, mut runs, mut restores, mut beyond_first) = (0, 0, 0, 0);
    let mut first_id = None;
    while kills < kills_wanted {
        assert!(
            runs < 3 * kills_wanted,
            "too many runs without {kills_wanted} kills"
        );
        let restoring = latest_checkpoint(&state.0);
        if runs > 0 {
            restores += 1;
            first_id = first_id.or(restoring);
            if restoring.is_some() && restoring > first_id {
                beyond_first += 1;
            }
        }
        // Each kill lands after the start-up, on average a tenth of the work further.
        let delay = startup + Duration::from_millis(rng.below((work.as_millis() as u64 / 5).max(1)));
        let mut child = spawn(&spec, None);
        runs += 1;
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline && child.try_wait().expect("status").is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().expect("status").is_none() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            kills += 1;
            eprintln!("run {runs}: killed after {delay:?}, restored from checkpoint {restoring:?}");
        } else {
            eprintln!("run {runs}: finished before its kill at {delay:?}");
        }
    }
    let restoring = latest_checkpoint(&state.0);
    report_restore("final run", &state.0, restoring);
    restores += 1;
    if restoring > first_id {
        beyond_first += 1;
    }
    let mut last = spawn(&spec, None);
    let status = wait(&mut last, Duration::from_secs(900));
    assert!(status.success(), "the final run failed: {status}");

    let results = read_all(&brokers, &spec.output, Duration::from_secs(5));
    let repeated = check(&results, &expected);
    check_dead_letters(&brokers, &spec, made.poison);
    eprintln!(
        "{kills} kills, {restores} restores ({beyond_first} from a checkpoint after the first), \
         {} windows, {repeated} written again after restarts",
        expected.len()
    );
    assert!(
        beyond_first * 2 >= restores,
        "only {beyond_first} of {restores} restores used a checkpoint after the first"
    );
}

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn a_crash_in_each_checkpoint_step_recovers() {
    let brokers = brokers();
    let made = input(150_000);
    let expected = expected(&made.on_time);
    let input = input_topic(&brokers, "failpoint-in", &made);
    for point in [
        "after-first-ack",
        "after-snapshot",
        "after-manifest-write",
        "before-manifest-rename",
        "after-manifest-rename",
    ] {
        let (spec, state) = scenario(&brokers, point, &input);
        // Crash while completing the third checkpoint.
        let mut child = spawn(&spec, Some(&format!("{point}:3")));
        let status = wait(&mut child, Duration::from_secs(600));
        assert!(!status.success(), "{point}: the child should have crashed");
        let restoring = latest_checkpoint(&state.0);
        report_restore(point, &state.0, restoring);
        let expected_id = if point == "after-manifest-rename" {
            Some(3)
        } else {
            Some(2)
        };
        assert_eq!(restoring, expected_id, "{point}: newest complete checkpoint");
        let mut child = spawn(&spec, None);
        let status = wait(&mut child, Duration::from_secs(600));
        assert!(status.success(), "{point}: the restarted child failed: {status}");
        let repeated = check(
            &read_all(&brokers, &spec.output, Duration::from_secs(5)),
            &expected,
        );
        check_dead_letters(&brokers, &spec, made.poison);
        eprintln!("{point}: recovered, {repeated} windows written again");
    }
}
