//! Sluice against secured real servers: a Kafka broker with SASL_SSL (SCRAM-SHA-256/512,
//! PLAIN), mutual-TLS and wrong-name listeners, and a Cassandra node with TLS only (client
//! certificates required) and PasswordAuthenticator, all under a throwaway CA made for the run
//! (scripts/services-secure.sh).
//!
//! The e-commerce job and a pipeline file run end to end over them and must write what a
//! batch computation gives; wrong passwords, protocol mismatches, unknown CAs and misnamed
//! certificates must be refused with one clear line; and the secrets must appear in none of
//! the job's output, state, metrics or dead letters.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::kafka::{read_topic, unique};
use common::services::SecureServices;
use common::shop::{assert_tables_match_batch, read_tables};
use common::{TempDir, example};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraConfig, CassandraError, TlsConfig, read_rows};
use sluice::kafka::{
    KafkaConfig, KafkaConnectorError, KafkaSecurity, KafkaTls, Refusal, Sasl, SaslMechanism, topic_exists,
};
use sluice_cli::shop::{MALFORMED_ORDERS, ShopData};

/// The topic the services' readiness probe created.
const PROBE_TOPIC: &str = "sluice-services-ready";

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SASL_SSL with user "sluice".
fn sasl_ssl(s: &SecureServices, mechanism: SaslMechanism, password: &str) -> KafkaConfig {
    KafkaConfig::new(s.var("SLUICE_KAFKA_SASL_SSL")).security(&KafkaSecurity {
        tls: Some(KafkaTls::with_ca_file(s.tls("ca.pem"))),
        sasl: Some(Sasl::new(mechanism, "sluice", password.to_string())),
    })
}

fn tls_only(addr: &str, tls: KafkaTls) -> KafkaConfig {
    KafkaConfig::new(addr).security(&KafkaSecurity {
        tls: Some(tls),
        sasl: None,
    })
}

/// What the brokers refused, if the error is a refusal.
fn refusal(error: &sluice::engine::BoxError) -> Option<Refusal> {
    match error.downcast_ref::<KafkaConnectorError>()? {
        KafkaConnectorError::Refused { refusal, .. } => Some(*refusal),
        _ => None,
    }
}

fn kafka_refuses_what_it_must(s: &SecureServices) {
    let password = s.secret("kafka-password");
    for mechanism in [
        SaslMechanism::ScramSha512,
        SaslMechanism::ScramSha256,
        SaslMechanism::Plain,
    ] {
        let found = topic_exists(&sasl_ssl(s, mechanism, &password), PROBE_TOPIC);
        assert!(matches!(found, Ok(true)), "{mechanism} over SASL_SSL: {found:?}");
    }

    let wrong = topic_exists(
        &sasl_ssl(s, SaslMechanism::ScramSha512, "not-the-password"),
        PROBE_TOPIC,
    )
    .expect_err("a wrong password is refused");
    assert_eq!(refusal(&wrong), Some(Refusal::Authentication), "{wrong}");
    let line = wrong.to_string();
    assert!(
        line.contains(s.var("SLUICE_KAFKA_SASL_SSL")) && line.contains("authentication failed"),
        "{line}"
    );

    // A plaintext client against the TLS listener, and a TLS client against the plaintext one.
    let plain = topic_exists(&KafkaConfig::new(s.var("SLUICE_KAFKA_SASL_SSL")), PROBE_TOPIC)
        .expect_err("no plaintext on a TLS listener");
    let line = plain.to_string();
    assert!(
        line.contains(s.var("SLUICE_KAFKA_SASL_SSL")) && line.contains("check the security settings"),
        "{line}"
    );
    let tls_to_plain = topic_exists(
        &tls_only(
            s.var("SLUICE_KAFKA_BROKERS"),
            KafkaTls::with_ca_file(s.tls("ca.pem")),
        ),
        PROBE_TOPIC,
    )
    .expect_err("no TLS on a plaintext listener");
    assert_eq!(refusal(&tls_to_plain), Some(Refusal::Tls), "{tls_to_plain}");

    // Certificates: from an unknown CA, or for another host name.
    let mut unknown_ca = sasl_ssl(s, SaslMechanism::ScramSha512, &password);
    unknown_ca = unknown_ca.set("ssl.ca.location", s.tls("unknown-ca.pem").display().to_string());
    let refused = topic_exists(&unknown_ca, PROBE_TOPIC).expect_err("unknown CA");
    assert_eq!(refusal(&refused), Some(Refusal::Tls), "{refused}");
    let wrong_name = s.var("SLUICE_KAFKA_WRONG_NAME");
    let refused = topic_exists(
        &tls_only(wrong_name, KafkaTls::with_ca_file(s.tls("ca.pem"))),
        PROBE_TOPIC,
    )
    .expect_err("a certificate for another host");
    assert_eq!(refusal(&refused), Some(Refusal::Tls), "{refused}");
    let any_name = KafkaTls {
        verify_hostname: false,
        ..KafkaTls::with_ca_file(s.tls("ca.pem"))
    };
    let found = topic_exists(&tls_only(wrong_name, any_name), PROBE_TOPIC);
    assert!(
        matches!(found, Ok(true)),
        "without the name check the CA still suffices: {found:?}"
    );

    // Mutual TLS: a client certificate from the CA is let in; none is refused.
    let mtls = s.var("SLUICE_KAFKA_MTLS");
    let with_cert = KafkaTls {
        client_cert: Some((s.tls("client.pem"), s.tls("client.key"))),
        ..KafkaTls::with_ca_file(s.tls("ca.pem"))
    };
    let found = topic_exists(&tls_only(mtls, with_cert), PROBE_TOPIC);
    assert!(matches!(found, Ok(true)), "mutual TLS: {found:?}");
    let refused = topic_exists(
        &tls_only(mtls, KafkaTls::with_ca_file(s.tls("ca.pem"))),
        PROBE_TOPIC,
    )
    .expect_err("no client certificate");
    assert_eq!(refusal(&refused), Some(Refusal::Tls), "{refused}");
}

/// Cassandra over TLS with the client certificate, as user "sluice".
fn cassandra(s: &SecureServices, keyspace: &str, password: &str) -> CassandraConfig {
    CassandraConfig::new([s.var("SLUICE_CASSANDRA")], keyspace)
        .credentials("sluice", password)
        .tls(TlsConfig {
            client_cert: Some((s.tls("client.pem"), s.tls("client.key"))),
            ..TlsConfig::with_ca_file(s.tls("ca.pem"))
        })
}

fn release(config: &CassandraConfig) -> Result<Vec<(String,)>, CassandraError> {
    read_rows::<(String,)>(config, "SELECT release_version FROM system.local")
}

fn cassandra_refuses_what_it_must(s: &SecureServices) {
    let password = s.secret("cassandra-password");
    let good = cassandra(s, "system", &password);
    assert!(release(&good).is_ok_and(|rows| rows.len() == 1));

    let wrong = release(&cassandra(s, "system", "not-the-password")).expect_err("wrong password");
    assert!(matches!(wrong, CassandraError::Authentication { .. }), "{wrong}");
    assert!(wrong.to_string().contains("authentication failed"), "{wrong}");

    let plaintext =
        CassandraConfig::new([s.var("SLUICE_CASSANDRA")], "system").credentials("sluice", password.clone());
    let refused = release(&plaintext).expect_err("no plaintext on the TLS port");
    assert!(
        refused.to_string().contains(s.var("SLUICE_CASSANDRA")),
        "{refused}"
    );

    let unknown_ca = good.clone().tls(TlsConfig {
        client_cert: Some((s.tls("client.pem"), s.tls("client.key"))),
        ..TlsConfig::with_ca_file(s.tls("unknown-ca.pem"))
    });
    let refused = release(&unknown_ca).expect_err("unknown CA");
    assert!(matches!(refused, CassandraError::Tls { .. }), "{refused}");

    let no_client_cert = good.clone().tls(TlsConfig::with_ca_file(s.tls("ca.pem")));
    assert!(
        release(&no_client_cert).is_err(),
        "the node requires a client certificate"
    );

    // The node reached at another address than its certificate names (127.0.0.2, forwarded
    // to the node): refused, unless the name check is explicitly off.
    let elsewhere = forward("127.0.0.2", s.var("SLUICE_CASSANDRA"));
    let misnamed = CassandraConfig::new([elsewhere.clone()], "system")
        .credentials("sluice", password.clone())
        .tls(TlsConfig {
            client_cert: Some((s.tls("client.pem"), s.tls("client.key"))),
            ..TlsConfig::with_ca_file(s.tls("ca.pem"))
        });
    let refused = release(&misnamed).expect_err("a certificate for another address");
    assert!(matches!(refused, CassandraError::Tls { .. }), "{refused}");
    let any_name = misnamed.tls(TlsConfig {
        client_cert: Some((s.tls("client.pem"), s.tls("client.key"))),
        verify_hostname: false,
        ..TlsConfig::with_ca_file(s.tls("ca.pem"))
    });
    // Without the name check the CA still suffices: the session is set up through the
    // forwarder (a query may then fail: the driver dials the node's own address with the
    // forwarder's port).
    let found = release(&any_name);
    assert!(
        matches!(found, Ok(_) | Err(CassandraError::Statement { .. })),
        "{found:?}"
    );

    // A TLS client against a plaintext node (the run's own, when there is one).
    if let Ok(plain_node) = std::env::var("SLUICE_CASSANDRA") {
        let tls_to_plain =
            CassandraConfig::new([plain_node], "system").tls(TlsConfig::with_ca_file(s.tls("ca.pem")));
        let refused = release(&tls_to_plain).expect_err("no TLS on a plaintext node");
        assert!(matches!(refused, CassandraError::Tls { .. }), "{refused}");
    }
}

/// Forwards connections to `ip`:(a free port) to `target`, from a background thread for the
/// rest of the test; returns the address it listens on.
fn forward(ip: &str, target: &str) -> String {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("a second loopback address");
    let addr = listener.local_addr().expect("address").to_string();
    let target = target.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone(), server.try_clone()),
                (server.try_clone(), client.try_clone()),
            ]
            .into_iter()
            .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    addr
}

/// Every place a secret could leak to, searched for each of `secrets`.
fn assert_nowhere(secrets: &[&str], place: &str, text: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret appears in {place}");
    }
}

/// Every file under `dir`, read as bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

/// GET /metrics with an optional bearer token; the whole response.
fn get_metrics(addr: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    common::http(addr, "GET /metrics", &auth)
}

fn ecommerce_runs_over_sasl_ssl_and_cassandra_tls(s: &SecureServices) {
    let kafka_password = s.secret("kafka-password");
    let cassandra_password = s.secret("cassandra-password");
    let token = format!("token-{}", unique("metrics")).replace('-', "");
    let dir = TempDir::new("secure-shop");
    let topic = unique("secure-orders");
    let keyspace = unique("secure_shop").replace('-', "_");
    let events = 3_000u64;
    // Cassandra's settings in the TOML file, its password from a variable it names.
    let settings = dir.0.join("shop.toml");
    std::fs::write(
        &settings,
        format!(
            "[cassandra_security]\nusername = \"sluice\"\npassword = \"${{SECURE_TEST_CASSANDRA_PASSWORD}}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            s.tls("ca.pem").display(),
            s.tls("client.pem").display(),
            s.tls("client.key").display()
        ),
    )
    .expect("settings file");
    let state = dir.0.join("state");
    let mut child = Command::new(example("ecommerce"))
        .args(["--config", &settings.display().to_string()])
        .args(["--brokers", s.var("SLUICE_KAFKA_SASL_SSL")])
        .args(["--cassandra", s.var("SLUICE_CASSANDRA")])
        .args(["--keyspace", &keyspace, "--orders-topic", &topic])
        .args(["--page-views-topic", &format!("{topic}-views")])
        .args(["--group", &unique("secure-shop")])
        .args([
            "--events",
            &events.to_string(),
            "--exit-when-idle",
            "3s",
            "--workers",
            "2",
        ])
        .args([
            "--state-dir",
            &state.display().to_string(),
            "--checkpoint-interval",
            "200ms",
        ])
        .args(["--kafka-ca-file", &s.tls("ca.pem").display().to_string()])
        .args([
            "--kafka-username",
            "sluice",
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-512",
        ])
        .args(["--metrics-addr", "0", "--quiet"])
        .env("SLUICE_KAFKA_PASSWORD", &kafka_password)
        .env("SECURE_TEST_CASSANDRA_PASSWORD", &cassandra_password)
        .env("SLUICE_METRICS_TOKEN", &token)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the ecommerce example");
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    // The metrics endpoint while the job runs: closed without the token, open with it.
    let mut stdout = String::new();
    let mut metrics = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("stdout line");
        if let Some(url) = line.strip_prefix("Metrics: http://") {
            let addr = url.trim_end_matches("/metrics");
            assert!(
                addr.starts_with("127.0.0.1:"),
                "a port alone binds loopback: {addr}"
            );
            metrics.push(get_metrics(addr, None));
            metrics.push(get_metrics(addr, Some(&token)));
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().expect("the job ends");
    let stderr = errors.join().expect("stderr reader");
    assert!(
        status.success(),
        "the job failed: {status}\n{stdout}\n{}",
        tail(&stderr)
    );
    assert_eq!(metrics.len(), 2, "the job printed its metrics address:\n{stdout}");
    assert!(metrics[0].starts_with("HTTP/1.1 401"), "{}", metrics[0]);
    assert!(
        metrics[1].starts_with("HTTP/1.1 200") && metrics[1].contains("# TYPE sluice_"),
        "{}",
        metrics[1]
    );

    let tables = read_tables(&cassandra(s, &keyspace, &cassandra_password));
    assert_tables_match_batch(&ShopData::default(), events, &tables);

    let secrets = [
        kafka_password.as_str(),
        cassandra_password.as_str(),
        token.as_str(),
    ];
    assert!(
        stderr.contains("target=\"librdkafka\"") || stderr.contains(" librdkafka"),
        "the search covers librdkafka's own debug logs:\n{}",
        tail(&stderr)
    );
    assert_nowhere(&secrets, "the job's standard output", &stdout);
    assert_nowhere(&secrets, "the job's logs (RUST_LOG=debug)", &stderr);
    assert_nowhere(&secrets, "the metrics", &metrics.join("\n"));
    let files = files_under(&state);
    assert!(
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("checkpoints")),
        "the run wrote checkpoints"
    );
    for (path, bytes) in files {
        assert_nowhere(
            &secrets,
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
    let dead_letters = read_topic(
        s.var("SLUICE_KAFKA_BROKERS"),
        &format!("{topic}-dlq"),
        MALFORMED_ORDERS as usize,
        Duration::from_secs(30),
    );
    assert_eq!(dead_letters.len() as u64, MALFORMED_ORDERS);
    let dumped: String = dead_letters
        .iter()
        .map(|r| format!("{:?} {:?} {:?}\n", r.key, r.headers, r.payload))
        .collect();
    assert_nowhere(&secrets, "the dead letters", &dumped);
}

/// The last lines of a log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run sluice")
}

fn a_pipeline_file_runs_over_sasl_ssl_and_cassandra_tls(s: &SecureServices) {
    let kafka_password = s.secret("kafka-password");
    let cassandra_password = s.secret("cassandra-password");
    let dir = TempDir::new("secure-pipeline");
    let ca = s.tls("ca.pem").display().to_string();
    let (cert, key) = (
        s.tls("client.pem").display().to_string(),
        s.tls("client.key").display().to_string(),
    );
    let kafka_password_file = dir.0.join("kafka.password");
    std::fs::write(&kafka_password_file, format!("{kafka_password}\n")).expect("password file");
    let cassandra_password_file = dir.0.join("cassandra.password");
    std::fs::write(&cassandra_password_file, &cassandra_password).expect("password file");

    // The input, by `sluice produce` over SCRAM-SHA-256 with the password in a file.
    let topic = unique("secure-pipe-orders");
    let events = 2_000u64;
    let out = sluice(
        &[
            "produce",
            "--brokers",
            s.var("SLUICE_KAFKA_SASL_SSL"),
            "--topic",
            &topic,
            "--page-views-topic",
            &format!("{topic}-views"),
            "--events",
            &events.to_string(),
            "--partitions",
            "2",
            "--kafka-ca-file",
            &ca,
            "--kafka-username",
            "sluice",
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-256",
            "--kafka-password-file",
            &kafka_password_file.display().to_string(),
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "sluice produce: {stdout}\n{}",
        tail(&stderr)
    );

    // The table, by `sluice cql` with the password in the environment.
    let keyspace = unique("secure_pipe").replace('-', "_");
    let cql_env = [("SLUICE_CASSANDRA_PASSWORD", cassandra_password.as_str())];
    let cql_tls = [
        "--cassandra",
        s.var("SLUICE_CASSANDRA"),
        "--cassandra-username",
        "sluice",
        "--cassandra-ca-file",
        &ca,
        "--cassandra-cert-file",
        &cert,
        "--cassandra-key-file",
        &key,
    ];
    for statement in [
        format!(
            "CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE {keyspace}.revenue (product_id text, window_start timestamp, revenue_cents bigint, orders bigint, PRIMARY KEY (product_id, window_start))"
        ),
    ] {
        let mut args = vec!["cql"];
        args.extend(cql_tls);
        args.push(&statement);
        let out = sluice(&args, &cql_env);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "sluice cql: {stdout}\n{}", tail(&stderr));
    }

    // The pipeline: SASL/PLAIN with the password from a variable, the store's from a file.
    let file = dir.0.join("revenue.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"secure-revenue\"\nworkers = 2\n\n\
             [source]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\nkey = \"product_id\"\nevent_time = \"ts\"\nexit_when_idle = \"3s\"\non_bad_record = \"skip\"\n\n\
             [source.security]\nca_file = \"{ca}\"\nsasl_mechanism = \"PLAIN\"\nusername = \"sluice\"\npassword = \"${{SECURE_TEST_KAFKA_PASSWORD}}\"\n\n\
             [window]\nkind = \"tumbling\"\nsize = \"1m\"\n\n\
             [[aggregate]]\ncolumn = \"revenue_cents\"\nfunction = \"sum\"\nfield = \"price_cents * quantity\"\n\n\
             [[aggregate]]\ncolumn = \"orders\"\nfunction = \"count\"\n\n\
             [sink]\ncassandra = \"{cassandra}\"\nkeyspace = \"{keyspace}\"\ntable = \"revenue\"\n\n\
             [sink.security]\nusername = \"sluice\"\npassword_file = \"{password_file}\"\nca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n",
            brokers = s.var("SLUICE_KAFKA_SASL_SSL"),
            cassandra = s.var("SLUICE_CASSANDRA"),
            password_file = cassandra_password_file.display(),
        ),
    )
    .expect("pipeline file");
    let out = sluice(
        &["run", &file.display().to_string()],
        &[
            ("SECURE_TEST_KAFKA_PASSWORD", kafka_password.as_str()),
            ("RUST_LOG", "debug"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "sluice run: {stdout}\n{}", tail(&stderr));
    let secrets = [kafka_password.as_str(), cassandra_password.as_str()];
    assert_nowhere(&secrets, "the pipeline's output", &stdout);
    assert_nowhere(&secrets, "the pipeline's logs (RUST_LOG=debug)", &stderr);

    let data = ShopData::default();
    let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for i in 0..events {
        let o = data.orders.nth(i);
        let row = expected
            .entry((o.product_id.clone(), o.ts - o.ts.rem_euclid(60_000)))
            .or_default();
        row.0 += o.revenue_cents();
        row.1 += 1;
    }
    let got: BTreeMap<(String, i64), (i64, i64)> = read_rows::<(String, CqlTimestamp, i64, i64)>(
        &cassandra(s, &keyspace, &cassandra_password),
        &format!("SELECT product_id, window_start, revenue_cents, orders FROM {keyspace}.revenue"),
    )
    .expect("the pipeline's table")
    .into_iter()
    .map(|(p, w, r, n)| ((p, w.0), (r, n)))
    .collect();
    assert_eq!(got.len(), expected.len(), "row count");
    assert!(got == expected, "rows differ from the batch computation");
}

/// The e-commerce job with a wrong password for one service ends with one line naming it.
fn wrong_passwords_end_the_job_with_one_line(s: &SecureServices) {
    let kafka_password = s.secret("kafka-password");
    let cassandra_password = s.secret("cassandra-password");
    let wrong = "wrong-password-value";
    let cases = [
        ("Kafka at", wrong, cassandra_password.as_str()),
        ("Cassandra at", kafka_password.as_str(), wrong),
    ];
    for (service, kafka, cassandra) in cases {
        let out = Command::new(example("ecommerce"))
            .args([
                "--brokers",
                s.var("SLUICE_KAFKA_SASL_SSL"),
                "--cassandra",
                s.var("SLUICE_CASSANDRA"),
            ])
            .args([
                "--keyspace",
                &unique("refused").replace('-', "_"),
                "--orders-topic",
                &unique("refused"),
            ])
            .args(["--events", "10", "--quiet"])
            .args([
                "--kafka-ca-file",
                &s.tls("ca.pem").display().to_string(),
                "--kafka-username",
                "sluice",
            ])
            .args([
                "--cassandra-username",
                "sluice",
                "--cassandra-ca-file",
                &s.tls("ca.pem").display().to_string(),
            ])
            .args([
                "--cassandra-cert-file",
                &s.tls("client.pem").display().to_string(),
            ])
            .args(["--cassandra-key-file", &s.tls("client.key").display().to_string()])
            .env("SLUICE_KAFKA_PASSWORD", kafka)
            .env("SLUICE_CASSANDRA_PASSWORD", cassandra)
            .output()
            .expect("run the ecommerce example");
        let (stdout, stderr) = text(&out);
        assert!(
            !out.status.success(),
            "{service}: a wrong password was accepted\n{stdout}"
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{service}: one error line:\n{}", tail(&stderr));
        assert!(
            errors[0].contains(service) && errors[0].contains("authentication failed"),
            "{}",
            errors[0]
        );
        assert!(!stderr.contains("panicked"), "{}", tail(&stderr));
        assert!(stderr.lines().count() < 20, "a retry storm:\n{}", tail(&stderr));
        let secrets = [wrong, kafka_password.as_str(), cassandra_password.as_str()];
        assert_nowhere(&secrets, "the refused job's output", &format!("{stdout}{stderr}"));
    }
}

#[test]
#[ignore = "starts secured Kafka and Cassandra (Java, jars): run scripts/test.sh"]
fn against_secured_kafka_and_cassandra() {
    // The clients' warnings (librdkafka's included) in the test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let services = SecureServices::start().expect("secured Kafka and Cassandra");
    kafka_refuses_what_it_must(&services);
    cassandra_refuses_what_it_must(&services);
    wrong_passwords_end_the_job_with_one_line(&services);
    ecommerce_runs_over_sasl_ssl_and_cassandra_tls(&services);
    a_pipeline_file_runs_over_sasl_ssl_and_cassandra_tls(&services);
}
