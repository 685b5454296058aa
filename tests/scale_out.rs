//! The e-commerce job spread over several processes (`--scale-out`) against real Kafka,
//! Cassandra and an S3-compatible checkpoint store (`scripts/test.sh` starts all three):
//! processes are killed, added, stopped and paused while the job runs, and the four tables
//! still equal the batch computation. Also a pipeline file with `[scale_out]` run by two
//! `sluice run` processes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{brokers, order_fixtures, orders, produce, unique};
use common::shop::{read_tables, tables_differ};
use common::{TempDir, s3_endpoint};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraConfig, execute_cql, read_rows};
use sluice::engine::RemoteCheckpoints;
use sluice::kafka::{KafkaConfig, ensure_topic};
use sluice_cli::shop::{Shop, ShopSettings};

/// Orders produced (and twice as many page views).
const ORDERS: u64 = 20_000;

/// The tests here run one at a time: each runs several processes of the job, and two sets
/// at once on a small machine starve the broker's group coordinator.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One run's shared settings: unique topics, group, keyspace and checkpoint prefix.
struct Run {
    settings: ShopSettings,
    store: String,
    endpoint: String,
    dir: TempDir,
}

impl Run {
    fn new(tag: &str) -> Self {
        let cassandra = std::env::var("SLUICE_CASSANDRA")
            .expect("SLUICE_CASSANDRA must name a Cassandra node (scripts/test.sh starts one)");
        let topic = unique(&format!("{tag}-orders"));
        let settings = ShopSettings {
            brokers: Some(brokers()),
            cassandra: Some(cassandra),
            keyspace: unique(tag).replace('-', "_"),
            orders_topic: topic.clone(),
            page_views_topic: format!("{topic}-views"),
            group: unique(&format!("{tag}-group")),
            partitions: 4,
            events: ORDERS,
            ..ShopSettings::default()
        };
        Run {
            store: format!("s3://sluice-checkpoints/{}", unique(tag)),
            endpoint: s3_endpoint(),
            dir: TempDir::new(tag),
            settings,
        }
    }

    /// The environment variables naming the checkpoint store's endpoint and credentials.
    fn store_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
    }

    /// Starts `program` as process `name` with the store's environment, its output in
    /// `<dir>/<name>.log`.
    fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Child {
        let log = std::fs::File::create(self.dir.0.join(format!("{name}.log"))).expect("log file");
        let err = log.try_clone().expect("log file");
        self.store_env(Command::new(program).args(args))
            .env("RUST_LOG", "warn,sluice_kafka=info")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start a process of the job")
    }

    /// Starts process `name` of the e-commerce job.
    fn process(&self, name: &str) -> Child {
        let s = &self.settings;
        let mut args: Vec<String> = Vec::new();
        let mut arg = |a: &[&str]| args.extend(a.iter().map(|a| a.to_string()));
        arg(&["--scale-out", "--events", "0", "--quiet", "--partitions", "4"]);
        arg(&["--brokers", s.brokers.as_deref().unwrap_or_default()]);
        arg(&["--cassandra", s.cassandra.as_deref().unwrap_or_default()]);
        arg(&["--keyspace", &s.keyspace, "--group", &s.group]);
        arg(&["--orders-topic", &s.orders_topic]);
        arg(&["--page-views-topic", &s.page_views_topic]);
        arg(&["--exit-when-idle", "3s", "--checkpoint-interval", "500ms"]);
        arg(&["--state-dir", &self.dir.0.join(name).display().to_string()]);
        arg(&["--checkpoint-store", &self.store]);
        self.spawn(name, &common::example("ecommerce"), &args)
    }

    /// What `sluice status` prints for this run.
    fn status(&self) -> String {
        let out = self
            .store_env(Command::new(env!("CARGO_BIN_EXE_sluice")).args([
                "status",
                "--brokers",
                &brokers(),
                "--group",
                &self.settings.group,
                "--checkpoint-store",
                &self.store,
            ]))
            .output()
            .expect("run sluice status");
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{printed}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits until the tables equal the batch computation.
    fn wait_for_tables(&self, shop: &Shop, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let tables = read_tables(&shop.services().cql);
            let Some(difference) = tables_differ(shop.data(), ORDERS, &tables) else {
                return;
            };
            if Instant::now() > deadline {
                let logs: String = names
                    .iter()
                    .map(|n| format!("--- {n}\n{}", tail(&self.log(n), 40)))
                    .collect();
                panic!("after 300 s: {difference}\n{logs}");
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// The checkpoints of task `task` (e.g. `users-0`) in the store.
    fn task_checkpoints(&self, task: &str) -> RemoteCheckpoints {
        RemoteCheckpoints::s3(
            &format!("{}/{task}", self.store),
            &[
                ("aws_endpoint", self.endpoint.as_str()),
                ("aws_allow_http", "true"),
                ("aws_region", "us-east-1"),
                ("aws_access_key_id", "test"),
                ("aws_secret_access_key", "test"),
            ],
        )
        .expect("an S3 client")
    }
}

/// Waits up to 120 s for `done`.
fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n") + "\n"
}

/// Sends `signal` (`INT`, `STOP`, `CONT`) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits up to `limit` for `child` to exit on its own; kills it after that.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Stops `child` gracefully (SIGINT) and requires a clean exit.
fn stop(run: &Run, mut child: Child, name: &str) {
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "{name} did not stop cleanly ({status:?}):\n{}",
        tail(&run.log(name), 40)
    );
}

#[test]
#[ignore = "needs Kafka, Cassandra and an S3 server: run scripts/test.sh"]
fn three_processes_one_killed_one_added_one_stopped_write_the_batch_result() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let run = Run::new("scaleout");
    let shop = Shop::start(run.settings.clone()).expect("topics and tables");
    shop.produce(|_| {}).expect("input produced");

    let mut a = run.process("a");
    let mut b = Some(run.process("b"));
    let c = run.process("c");
    // Process a dies without a word after running tasks for a few seconds (checkpoints every
    // 500 ms): they go to the others after the session timeout, from their last published
    // checkpoints.
    wait_for(
        || run.log("a").matches("task started").count() >= 3,
        "a runs tasks",
    );
    std::thread::sleep(Duration::from_secs(3));
    a.kill().expect("SIGKILL a");
    let _ = a.wait();
    let d = run.process("d");
    std::thread::sleep(Duration::from_secs(4));
    // Process b leaves: its tasks take a last checkpoint and move.
    if let Some(b) = b.take() {
        stop(&run, b, "b");
    }
    run.wait_for_tables(&shop, &["a", "b", "c", "d"]);
    for name in ["a", "b", "c", "d"] {
        let events: Vec<String> = run
            .log(name)
            .lines()
            .filter(|l| l.contains("task") && !l.contains("joined"))
            .map(|l| l.split("INFO").last().unwrap_or(l).to_string())
            .collect();
        eprintln!("--- {name}\n{}", events.join("\n"));
    }
    let published = run.task_checkpoints("users-0").published().expect("HEAD");
    assert!(published.is_some(), "task users-0 published its checkpoints");
    // `sluice status` names the two processes left as the owners of every task (once no
    // group is in the middle of a rebalance, when a task may be between owners).
    let owners = [format!("sluice-{}", c.id()), format!("sluice-{}", d.id())];
    let deadline = Instant::now() + Duration::from_secs(60);
    let printed = loop {
        let printed = run.status();
        let settled = printed
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
            .all(|l| l.contains("(Stable"));
        let rows = printed.lines().filter(|l| l.contains("(epoch ")).count();
        if (settled && rows == 16) || Instant::now() > deadline {
            break printed;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    for stage in ["orders", "views", "users", "categories"] {
        assert!(
            printed.contains(&format!("{}-stage-{stage} (Stable", run.settings.group)),
            "{printed}"
        );
    }
    let rows: Vec<&str> = printed.lines().filter(|l| l.contains("(epoch ")).collect();
    assert_eq!(
        rows.len(),
        16,
        "four tasks of four stages, each with its checkpoint:\n{printed}"
    );
    assert!(
        rows.iter().all(|r| owners.iter().any(|o| r.contains(o.as_str()))),
        "every task is run by c or d:\n{printed}"
    );
    stop(&run, c, "c");
    stop(&run, d, "d");
}

#[test]
#[ignore = "needs Kafka, Cassandra and an S3 server: run scripts/test.sh"]
fn a_rebalance_storm_and_a_stale_owner_still_write_the_batch_result() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let run = Run::new("storm");
    let shop = Shop::start(run.settings.clone()).expect("topics and tables");
    shop.produce(|_| {}).expect("input produced");

    let stale = run.process("stale");
    let steady = run.process("steady");
    wait_for(
        || run.log("stale").matches("task started").count() >= 3,
        "stale runs tasks",
    );
    // Paused past the session timeout: its tasks go to the others, which claim newer epochs.
    signal(&stale, "STOP");
    let paused = Instant::now();
    // Processes join and leave every few seconds meanwhile.
    for round in 0..4 {
        let name = format!("storm-{round}");
        let member = run.process(&name);
        std::thread::sleep(Duration::from_secs(3));
        stop(&run, member, &name);
    }
    std::thread::sleep(Duration::from_secs(15).saturating_sub(paused.elapsed()));
    signal(&stale, "CONT");
    run.wait_for_tables(&shop, &["stale", "steady", "storm-0", "storm-3"]);
    let log = run.log("stale");
    assert!(
        log.contains("task lost to another member") || log.contains("task taken over by another member"),
        "the stale owner noticed it was replaced:\n{}",
        tail(&log, 40)
    );
    stop(&run, stale, "stale");
    stop(&run, steady, "steady");
}

#[test]
#[ignore = "needs Kafka, Cassandra and an S3 server: run scripts/test.sh"]
fn a_pipeline_file_spread_over_two_processes_writes_the_batch_result() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let run = Run::new("pipe-scale");
    let s = &run.settings;
    let cassandra = s.cassandra.clone().unwrap_or_default();
    // Keyed by product: the pipeline groups by user, so its records cross a repartition topic.
    ensure_topic(&KafkaConfig::new(brokers()), &s.orders_topic, 4).expect("topic");
    let orders = orders(4_000);
    produce(&brokers(), &s.orders_topic, &order_fixtures(&orders, &[]));
    let cql = CassandraConfig::new([cassandra.clone()], s.keyspace.clone());
    execute_cql(
        &cql,
        &[
            &format!("CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}", s.keyspace),
            &format!("CREATE TABLE IF NOT EXISTS {}.user_revenue (user_id text, window_start timestamp, revenue_cents bigint, orders bigint, PRIMARY KEY ((user_id), window_start))", s.keyspace),
        ],
    )
    .expect("table");
    // Each process keeps its tasks' local state in a directory of its own.
    let process = |name: &str| {
        let text = format!(
            "name = \"user-revenue\"\nstate_dir = \"{dir}\"\ncheckpoint_interval = \"500ms\"\ncheckpoint_store = \"{store}\"\n\n\
             [source]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\nkey = \"user_id\"\nevent_time = \"ts\"\nmax_out_of_orderness = \"5s\"\nexit_when_idle = \"3s\"\n\n\
             [window]\nkind = \"tumbling\"\nsize = \"1m\"\n\n\
             [[aggregate]]\ncolumn = \"revenue_cents\"\nfunction = \"sum\"\nfield = \"price_cents * quantity\"\n\n\
             [[aggregate]]\ncolumn = \"orders\"\nfunction = \"count\"\n\n\
             [sink]\ncassandra = \"{cassandra}\"\nkeyspace = \"{keyspace}\"\ntable = \"user_revenue\"\n\n\
             [scale_out]\ngroup = \"{group}\"\n",
            dir = run.dir.0.join(name).display(),
            store = run.store,
            brokers = brokers(),
            topic = s.orders_topic,
            keyspace = s.keyspace,
            group = s.group,
        );
        let path = run.dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("pipeline file");
        let args = ["run".to_string(), path.display().to_string()];
        run.spawn(name, Path::new(env!("CARGO_BIN_EXE_sluice")), &args)
    };
    let first = process("first");
    wait_for(
        || run.log("first").matches("task started").count() >= 4,
        "first runs tasks",
    );
    // The second takes its share of the tasks over, from the first's last checkpoints.
    let second = process("second");

    let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for o in &orders {
        let e = expected
            .entry((o.user_id.clone(), o.ts - o.ts.rem_euclid(60_000)))
            .or_default();
        e.0 += o.revenue_cents();
        e.1 += 1;
    }
    let query = format!(
        "SELECT user_id, window_start, revenue_cents, orders FROM {}.user_revenue",
        s.keyspace
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got: BTreeMap<(String, i64), (i64, i64)> =
            read_rows::<(String, CqlTimestamp, i64, i64)>(&cql, &query)
                .expect("read back")
                .into_iter()
                .map(|(u, w, r, o)| ((u, w.0), (r, o)))
                .collect();
        if got == expected {
            break;
        }
        if Instant::now() > deadline {
            let wrong = expected.iter().filter(|(k, v)| got.get(*k) != Some(*v)).count();
            panic!(
                "after 300 s, {wrong} of {} windows differ ({} rows written)\n--- first\n{}--- second\n{}",
                expected.len(),
                got.len(),
                tail(&run.log("first"), 30),
                tail(&run.log("second"), 30)
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        run.log("second").contains("task started"),
        "the second process took tasks:\n{}",
        run.log("second")
    );
    stop(&run, first, "first");
    stop(&run, second, "second");
}
