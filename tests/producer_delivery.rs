//! The generated-input producer reports records the broker never took, instead of dropping
//! them silently.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use sluice::kafka::KafkaConfig;
use sluice_cli::producer::JsonProducer;

#[test]
fn flush_fails_when_records_were_not_delivered() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("numbers", 1, 1).expect("topic");
    let config = KafkaConfig::new(mock.bootstrap_servers()).set("message.timeout.ms", "500");

    let mut producer = JsonProducer::new(&config).expect("producer");
    producer.send("numbers", "k", &1, None).expect("queued");
    producer.flush(Duration::from_secs(10)).expect("delivered");

    mock.broker_down(1).expect("broker down");
    producer.send("numbers", "k", &2, None).expect("queued");
    let error = producer
        .flush(Duration::from_secs(10))
        .expect_err("the broker is down")
        .to_string();
    assert!(
        error.contains("1 records were not delivered") && error.contains("numbers"),
        "{error}"
    );
}
