//! The job graph: orders and page views from Kafka → four result tables.

use std::time::Duration;

use sluice_engine::{
    CheckpointConfig, ConsoleConfig, EngineError, Job, JobBuilder, JobConfig, RemoteCheckpoints, Result,
    StateBackendConfig, Stream, WatermarkStrategy,
};
use sluice_kafka::{KafkaConfig, KafkaSource};
use sluice_operators::{Count, JoinInterval, KeyedJoinExt, KeyedStreamExt, Min, StreamExt, Sum, Windows};

use super::settings::ShopSettings;
use super::tables::{
    ATTRIBUTION_WINDOW, CategoryRevenue, Conversion, ProductRevenue, SESSION_GAP, ShopTables, UserSession,
};
use crate::datagen::{Order, PageView};

/// How far a record's event time may fall behind the newest one of its partition: the
/// watermark of each partition is its largest `ts` minus this.
pub const OUT_OF_ORDERNESS: Duration = Duration::from_secs(5);

/// A partition without records for this long stops holding the watermark back.
pub const PARTITION_IDLENESS: Duration = Duration::from_secs(10);

/// The job's configuration from the settings: workers, and with a state directory RocksDB
/// state under `<dir>/state` and checkpoints under `<dir>/checkpoints` (restoring the latest),
/// also kept in the checkpoint store when one is set.
///
/// # Errors
/// A checkpoint store URL the S3 client does not take.
pub fn job_config(settings: &ShopSettings) -> Result<JobConfig> {
    let mut config = JobConfig::new("ecommerce");
    if let Some(workers) = settings.workers {
        config = config.workers(workers);
    }
    if let Some(dir) = &settings.state_dir {
        let mut checkpoints =
            CheckpointConfig::new(dir.join("checkpoints")).interval(settings.checkpoint_interval);
        if let Some(url) = &settings.checkpoint_store {
            checkpoints = checkpoints.remote(checkpoint_store(url)?);
        }
        config = config
            .state_backend(StateBackendConfig::rocksdb(dir.join("state")))
            .checkpoints(checkpoints);
    }
    if let Some(addr) = settings.console_addr {
        let mut console = ConsoleConfig::new(addr);
        if let Some(token) = settings.console_token().map_err(|e| EngineError::InvalidConfig {
            key: "console-token-file",
            reason: e.to_string(),
        })? {
            console = console.token(token);
        }
        config = config.console(console);
    }
    Ok(config)
}

/// The checkpoint store at `url` (`s3://bucket/prefix`), configured from the environment
/// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
pub fn checkpoint_store(url: &str) -> Result<RemoteCheckpoints> {
    RemoteCheckpoints::s3(url, &[]).map_err(|e| EngineError::InvalidConfig {
        key: "checkpoint_store",
        reason: e.to_string(),
    })
}

/// The e-commerce job reading `kafka` and writing `tables`.
pub fn shop_job(settings: &ShopSettings, kafka: &KafkaConfig, tables: &ShopTables) -> Result<Job> {
    let (settings, kafka, tables) = (settings.clone(), kafka.clone(), tables.clone());
    Job::new(job_config(&settings)?, move |b| {
        build(b, &settings, &kafka, &tables);
        Ok(())
    })
}

/// A source of `topic` in its own consumer group, `<group>-<topic>`: a group whose members
/// subscribe to different topics rebalances all of them whenever one joins.
pub(super) fn source<T>(settings: &ShopSettings, kafka: &KafkaConfig, topic: &str) -> KafkaSource<T>
where
    T: sluice_engine::Data + serde::de::DeserializeOwned,
{
    let on_bad_record = settings
        .on_bad_record
        .map_dead_letters(|()| settings.dead_letter_topic());
    let group = format!("{}-{topic}", settings.group);
    let source = KafkaSource::json(kafka.clone(), group, &[topic]).on_bad_record(on_bad_record);
    match settings.idle_exit() {
        Some(idle) => source.exit_when_idle(idle),
        None => source,
    }
}

/// The rows of `product_revenue_1m`: revenue, orders and units per product per 1-minute
/// tumbling event-time window of `orders`, final results only.
pub fn product_revenue(orders: &Stream<Order>) -> Stream<ProductRevenue> {
    orders
        .key_by("orders_by_product", |o| o.product_id.clone())
        .window("product_revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate((
            Sum::of(|o: &Order| o.revenue_cents()),
            Count,
            Sum::of(|o: &Order| o.quantity),
        ))
        .map("product_revenue_row", ProductRevenue::from_window)
}

fn build(b: &mut JobBuilder, settings: &ShopSettings, kafka: &KafkaConfig, tables: &ShopTables) {
    let orders: Stream<Order> = b.source(
        "orders",
        source(settings, kafka, &settings.orders_topic),
        WatermarkStrategy::bounded_out_of_orderness(OUT_OF_ORDERNESS)
            .with_timestamps(|o: &Order| o.ts)
            .with_idleness(PARTITION_IDLENESS),
    );
    let views: Stream<PageView> = b.source(
        "page_views",
        source(settings, kafka, &settings.page_views_topic),
        WatermarkStrategy::bounded_out_of_orderness(OUT_OF_ORDERNESS)
            .with_timestamps(|v: &PageView| v.ts)
            .with_idleness(PARTITION_IDLENESS),
    );

    product_revenue(&orders).sink("product_revenue_1m_table", tables.product_revenue.clone());
    category_revenue(&orders, tables);
    users(&orders, &views, tables);
}

/// `category_revenue_5m` from orders: revenue and orders per category per sliding 5-minute
/// window, every minute.
pub(super) fn category_revenue(orders: &Stream<Order>, tables: &ShopTables) {
    orders
        .key_by("orders_by_category", |o| o.category.clone())
        .window(
            "category_revenue_5m",
            Windows::sliding(Duration::from_secs(300), Duration::from_secs(60)),
        )
        .aggregate((Sum::of(|o: &Order| o.revenue_cents()), Count))
        .map("category_revenue_row", CategoryRevenue::from_window)
        .sink("category_revenue_5m_table", tables.category_revenue.clone());
}

/// `user_sessions` and `conversions` from orders and page views, both keyed by user.
pub(super) fn users(orders: &Stream<Order>, views: &Stream<PageView>, tables: &ShopTables) {
    let by_user = orders.key_by("orders_by_user", |o| o.user_id.clone());
    by_user
        .window("user_sessions", Windows::session(SESSION_GAP))
        .aggregate((Count, Sum::of(|o: &Order| o.revenue_cents())))
        .map("user_session_row", UserSession::from_window)
        .sink("user_sessions_table", tables.user_sessions.clone());

    // Every pair of an order carries the order's time (the later of the two), so a 1 ms
    // window per order collects all of its pairs and closes once the watermark passes it.
    let views_by_user = views.key_by("views_by_user", |v| v.user_id.clone());
    by_user
        .interval_join(
            "order_views",
            &views_by_user,
            JoinInterval::preceding(ATTRIBUTION_WINDOW),
        )
        .apply(|_, o: &Order, v: &PageView| (OrderRef::of(o), v.ts))
        .key_by("pairs_by_order", |(order, _)| order.clone())
        .window("views_per_order", Windows::tumbling(Duration::from_millis(1)))
        .aggregate((Count, Min::of(|(_, ts): &(OrderRef, i64)| *ts)))
        .map("conversion_row", |w| {
            let OrderRef {
                order_id,
                user_id,
                product_id,
                ts,
            } = w.key;
            Conversion {
                order_id,
                user_id,
                product_id,
                order_ts: ts,
                views_before: w.value.0 as i64,
                first_view_ts: w.value.1.unwrap_or(ts),
            }
        })
        .sink("conversions_table", tables.conversions.clone());
}

/// The parts of an order a conversion row keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
struct OrderRef {
    order_id: String,
    user_id: String,
    product_id: String,
    ts: i64,
}

impl OrderRef {
    fn of(o: &Order) -> Self {
        OrderRef {
            order_id: o.order_id.clone(),
            user_id: o.user_id.clone(),
            product_id: o.product_id.clone(),
            ts: o.ts,
        }
    }
}
