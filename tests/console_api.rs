//! The console's REST API against running jobs: every endpoint, a job with one partition
//! deliberately idle and one operator deliberately slow (the API must name both), savepoint,
//! stop with a final checkpoint, restarts and the bearer token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::engine::{CheckpointConfig, ConsoleConfig, JobHandle};
use sluice::prelude::*;
use sluice::testing::{CaptureSink, TestInput};

/// Records a second the feeder writes into partition 0.
const PER_TICK: u64 = 20;

fn get(addr: SocketAddr, path: &str) -> Value {
    ureq::get(format!("http://{addr}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .body_mut()
        .read_json()
        .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

fn post(addr: SocketAddr, path: &str) -> Value {
    ureq::post(format!("http://{addr}{path}"))
        .send_empty()
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
        .body_mut()
        .read_json()
        .unwrap_or_else(|e| panic!("POST {path}: not JSON: {e}"))
}

/// Waits up to 60 s for `check` to hold on a fresh answer from `path`; returns that answer.
fn wait_for(addr: SocketAddr, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = get(addr, path);
        if check(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never so; last {path}: {answer:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn operator<'a>(operators: &'a Value, name: &str) -> &'a Value {
    operators["operators"]
        .as_array()
        .and_then(|all| all.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no operator {name} in {operators:#}"))
}

fn find_partition(partitions: &Value, p: u64) -> Option<&Value> {
    partitions["partitions"]
        .as_array()
        .and_then(|all| all.iter().find(|x| x["partition"] == p))
}

fn partition(partitions: &Value, p: u64) -> &Value {
    find_partition(partitions, p).unwrap_or_else(|| panic!("no partition {p} in {partitions:#}"))
}

/// Writes `PER_TICK` records into partition 0 every 50 ms, event time moving with them,
/// until `stop`.
fn feed(input: TestInput<u64>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..PER_TICK {
                input.push(0, n);
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// source (2 partitions) -> fast -> slow (2 ms a record) -> key_by -> sum window -> sink,
/// on 2 workers: partition 1 never gets a record.
fn start_job(
    name: &str,
    input: &TestInput<u64>,
    idleness: Option<Duration>,
    checkpoints: Option<&std::path::Path>,
    console: ConsoleConfig,
) -> JobHandle {
    let (source, sink) = (input.source(), CaptureSink::<WindowResult<u64, u64>>::new());
    let mut config = JobConfig::new(name).workers(2).console(console);
    if let Some(dir) = checkpoints {
        config = config.checkpoints(CheckpointConfig::new(dir).interval(Duration::from_millis(300)));
    }
    Job::new(config, move |b| {
        // Record n is at n ms of event time.
        let mut strategy = WatermarkStrategy::monotonous().with_timestamps(|v: &u64| *v as i64);
        if let Some(idle) = idleness {
            strategy = strategy.with_idleness(idle);
        }
        b.source("numbers", source.clone(), strategy)
            .map("fast", |v| v)
            .map("slow", |v| {
                std::thread::sleep(Duration::from_millis(2));
                v
            })
            .key_by("by_parity", |v| v % 2)
            .window("sums", Windows::tumbling(Duration::from_millis(100)))
            .aggregate(Sum::of(|v: &u64| *v))
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job")
    .start()
    .expect("job starts")
}

fn loopback() -> ConsoleConfig {
    ConsoleConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
}

#[test]
fn the_api_names_the_slow_operator_and_the_idle_partition_and_serves_every_endpoint() {
    let input = TestInput::<u64>::new(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = start_job(
        "console-api",
        &input,
        Some(Duration::from_millis(300)),
        Some(dir.path()),
        loopback(),
    );
    let addr = job.console_addr().expect("the console serves");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(input.clone(), Arc::clone(&stop));

    // The job: running, its graph with every operator and how records cross each edge.
    let j = get(addr, "/api/job");
    assert_eq!(j["name"], "console-api");
    assert_eq!(j["state"], "running");
    assert_eq!(j["workers"], 2);
    assert_eq!(j["restarts"], 0);
    let names: Vec<&str> = j["graph"]["operators"]
        .as_array()
        .expect("operators")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, ["numbers", "fast", "slow", "by_parity", "sums", "out"]);
    let edge = |from: &str, to: &str| {
        j["graph"]["edges"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["from"] == from && e["to"] == to))
            .map(|e| e["kind"].clone())
    };
    assert_eq!(edge("numbers", "fast"), Some("forward".into()));
    assert_eq!(edge("slow", "by_parity"), Some("exchange".into()));
    assert_eq!(edge("by_parity", "sums"), Some("forward".into()));
    assert_eq!(j["graph"]["operators"][4]["parallelism"], 2);

    // The slow operator is the busiest, by far more than the one before it.
    let ops = wait_for(addr, "/api/operators", "slow is the busiest operator", |o| {
        o["busiest"]["operator"] == "slow" && o["busiest"]["busy"].as_f64() > Some(0.3)
    });
    let (fast, slow) = (operator(&ops, "fast"), operator(&ops, "slow"));
    assert!(
        slow["busy"].as_f64() > fast["busy"].as_f64().map(|f| f * 5.0),
        "slow {} vs fast {}",
        slow["busy"],
        fast["busy"]
    );
    assert!(slow["records_in"].as_u64() > Some(0));
    assert!(slow["records_in_per_sec"].as_f64() > Some(0.0));
    assert_eq!(slow["workers"].as_array().map(Vec::len), Some(2));
    let exchange = operator(&ops, "by_parity");
    assert!(exchange["queue_fill"].is_number(), "{exchange:#}");
    assert!(
        exchange["workers"][0]["gauges"]["queue_capacity"].as_i64() > Some(0),
        "{exchange:#}"
    );
    // The worker reading partition 0 spends its time working, not idle.
    assert!(
        ops["workers"][0]["busy"].as_f64() > Some(0.3),
        "{:#}",
        ops["workers"]
    );

    // Partition 1 never got a record: idle; partition 0 holds the job's watermark.
    let parts = wait_for(addr, "/api/partitions", "partition 1 idle", |p| {
        find_partition(p, 1).is_some_and(|p1| p1["idle"] == true) && p["job"]["held_by"]["partition"] == 0
    });
    let (p0, p1) = (partition(&parts, 0), partition(&parts, 1));
    assert_eq!(p0["idle"], false);
    assert_eq!((p0["worker"].as_u64(), p1["worker"].as_u64()), (Some(0), Some(1)));
    assert!(p0["next_offset"].as_u64() > Some(0), "{p0:#}");
    assert!(p0["lag"].is_u64(), "{p0:#}");
    assert_eq!(p1["watermark"], Value::Null);
    assert_eq!(parts["job"]["watermark"], p0["watermark"]);
    assert_eq!(parts["job"]["held_by"]["source"], "numbers");
    assert!(parts["job"]["gap_ms"].as_i64() > Some(0));

    // Checkpoints complete every 300 ms; a savepoint is kept with the checkpoint it copies.
    let cps = wait_for(addr, "/api/checkpoints", "a completed checkpoint", |c| {
        c["checkpoints"]
            .as_array()
            .is_some_and(|all| all.iter().any(|c| c["state"] == "completed"))
    });
    assert_eq!(cps["enabled"], true);
    assert_eq!(cps["interval_ms"], 300);
    let done = cps["checkpoints"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["state"] == "completed"))
        .expect("completed");
    assert!(
        done["bytes"].as_u64() > Some(0) && done["duration_ms"].is_u64(),
        "{done:#}"
    );
    let saved = post(addr, "/api/savepoint?name=before-upgrade");
    assert_eq!(saved["name"], "before-upgrade");
    let path = saved["path"].as_str().expect("path");
    assert!(std::path::Path::new(path).exists(), "{path}");
    let cps = get(addr, "/api/checkpoints");
    assert!(
        cps["checkpoints"]
            .as_array()
            .is_some_and(|all| all.iter().any(|c| c["savepoints"][0] == "before-upgrade")),
        "{cps:#}"
    );

    // Sinks and rates.
    let sinks = wait_for(addr, "/api/sinks", "the sink took records", |s| {
        s["sinks"][0]["records_in"].as_u64() > Some(0)
    });
    assert_eq!(sinks["sinks"][0]["name"], "out");
    assert_eq!(
        sinks["sinks"][0]["store"],
        Value::Null,
        "a capture sink has no store"
    );
    let rates = get(addr, "/api/rates");
    let series = rates["series"].as_array().expect("series");
    assert_eq!(series.len(), 6);
    let numbers = series
        .iter()
        .find(|s| s["operator"] == "numbers")
        .expect("numbers");
    assert!(
        numbers["points"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p[1].as_f64() > Some(0.0))),
        "{numbers:#}"
    );

    // Stop: a final checkpoint, then the job ends as stopped.
    let stopped = post(addr, "/api/stop");
    let last = stopped["final_checkpoint"].as_u64().expect("a final checkpoint");
    stop.store(true, Ordering::Relaxed);
    feeder.join().expect("feeder");
    let report = job.join().expect("the job stops cleanly");
    assert!(report.stopped);
    assert!(last > 0);
}

#[test]
fn without_idleness_the_partition_that_never_delivered_holds_the_watermark_back() {
    let input = TestInput::<u64>::new(2);
    let job = start_job("console-held", &input, None, None, loopback());
    let addr = job.console_addr().expect("the console serves");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(input.clone(), Arc::clone(&stop));
    let parts = wait_for(addr, "/api/partitions", "partition 0 has a watermark", |p| {
        find_partition(p, 0).is_some_and(|p0| p0["watermark"].is_i64()) && find_partition(p, 1).is_some()
    });
    assert_eq!(partition(&parts, 1)["idle"], false);
    assert_eq!(parts["job"]["held_by"]["partition"], 1, "{parts:#}");
    assert_eq!(parts["job"]["watermark"], Value::Null);
    let cps = get(addr, "/api/checkpoints");
    assert_eq!(cps["enabled"], false);
    let refused = ureq::post(format!("http://{addr}/api/savepoint")).send_empty();
    assert!(
        matches!(refused, Err(ureq::Error::StatusCode(409))),
        "a savepoint without checkpoints: {refused:?}"
    );
    stop.store(true, Ordering::Relaxed);
    feeder.join().expect("feeder");
    drop(job);
}

#[test]
fn restarts_and_their_errors_are_shown() {
    let input = TestInput::<u64>::new(1);
    input.push(0, 1);
    input.push(0, 13);
    input.push(0, 2);
    let failed_once = Arc::new(AtomicBool::new(false));
    let source = input.source();
    let config = JobConfig::new("console-restarts")
        .workers(1)
        .restart_strategy(RestartStrategy::backoff(3, Duration::from_millis(10)))
        .console(loopback());
    let job = Job::new(config, move |b| {
        let failed_once = Arc::clone(&failed_once);
        b.source("numbers", source.clone(), WatermarkStrategy::monotonous())
            .map("unlucky", move |v: u64| {
                if v == 13 && !failed_once.swap(true, Ordering::Relaxed) {
                    panic!("13 is unlucky");
                }
                v
            })
            .sink("out", CaptureSink::<u64>::new());
        Ok(())
    })
    .expect("valid job")
    .start()
    .expect("job starts");
    let addr = job.console_addr().expect("the console serves");
    let j = wait_for(addr, "/api/job", "one restart", |j| {
        j["restarts"] == 1 && j["state"] == "running"
    });
    let error = j["errors"][0]["error"].as_str().expect("an error");
    assert!(error.contains("unlucky"), "{error}");
    drop(job);
}

#[test]
fn with_a_token_the_api_answers_only_requests_that_carry_it() {
    let input = TestInput::<u64>::new(1);
    let job = start_job("console-token", &input, None, None, loopback().token("s3cret"));
    let addr = job.console_addr().expect("the console serves");
    let refused = ureq::get(format!("http://{addr}/api/job")).call();
    assert!(
        matches!(refused, Err(ureq::Error::StatusCode(401))),
        "{refused:?}"
    );
    let wrong = ureq::get(format!("http://{addr}/api/job"))
        .header("Authorization", "Bearer guess")
        .call();
    assert!(matches!(wrong, Err(ureq::Error::StatusCode(401))), "{wrong:?}");
    let j: Value = ureq::get(format!("http://{addr}/api/job"))
        .header("Authorization", "Bearer s3cret")
        .call()
        .expect("allowed")
        .body_mut()
        .read_json()
        .expect("JSON");
    assert_eq!(j["name"], "console-token");
    // The page itself loads without the token (it takes it from its address).
    let page = ureq::get(format!("http://{addr}/"))
        .call()
        .expect("page")
        .body_mut()
        .read_to_string()
        .expect("text");
    assert!(page.contains("app.js"), "{page}");
    drop(job);
}
