//! The e-commerce job spread over processes (`--scale-out`): four stages, each a
//! [`TaskGroup`] of Kafka consumer group `<group>-stage-<stage>`, whose task *q* is a job of its own
//! reading partition *q* of the stage's topics, with RocksDB state and checkpoints in the
//! checkpoint store under `<stage>-<q>`.
//!
//! - `orders`: task *q* of the orders topic writes `product_revenue_1m` (the topic is keyed
//!   by product, so a product's orders are all in one task) and re-keys the orders by user
//!   and by category into repartition topics.
//! - `views`: task *q* of the page-views topic re-keys the views by user.
//! - `users`: task *q* of the two by-user repartition topics (co-partitioned) writes
//!   `user_sessions` and `conversions`.
//! - `categories`: task *q* of the by-category repartition topic writes
//!   `category_revenue_5m`.
//!
//! Every process runs all four groups; the groups spread the tasks over the processes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sluice_engine::{Job, JobBuilder, Stream, WatermarkStrategy};
use sluice_kafka::{KafkaConfig, Located, Repartition, StartFrom, TaskGroup, ensure_topic};
use sluice_operators::StreamExt;

use super::error::ShopError;
use super::pipeline::{
    OUT_OF_ORDERNESS, PARTITION_IDLENESS, category_revenue, product_revenue, source, users,
};
use super::settings::ShopSettings;
use super::tables::ShopTables;
use crate::datagen::{Order, PageView};
use crate::scale_out::{TaskJobs, TaskStore, run_stages, stage_group};

/// The stages of the job spread over processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Orders: product revenue, and the orders re-keyed by user and by category.
    Orders,
    /// Page views, re-keyed by user.
    Views,
    /// Sessions and conversions per user.
    Users,
    /// Revenue per category.
    Categories,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 4] = [Stage::Orders, Stage::Views, Stage::Users, Stage::Categories];

    /// The stage's name, in its consumer group and its tasks' names.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Orders => "orders",
            Stage::Views => "views",
            Stage::Users => "users",
            Stage::Categories => "categories",
        }
    }
}

/// The repartition topics between the stages.
#[derive(Debug, Clone)]
struct Repartitions {
    orders_by_user: Repartition,
    views_by_user: Repartition,
    orders_by_category: Repartition,
}

impl Repartitions {
    fn new(settings: &ShopSettings, kafka: &KafkaConfig) -> Self {
        let partitions = settings.partitions.max(1) as u32;
        let topic = |name: &str, upstream: &str| {
            Repartition::new(
                kafka.clone(),
                Repartition::topic_name(&settings.group, name),
                partitions,
                &[upstream],
            )
            .out_of_orderness(OUT_OF_ORDERNESS)
        };
        Repartitions {
            orders_by_user: topic("orders_by_user", &settings.orders_topic),
            views_by_user: topic("views_by_user", &settings.page_views_topic),
            orders_by_category: topic("orders_by_category", &settings.orders_topic),
        }
    }

    fn all(&self) -> [&Repartition; 3] {
        [
            &self.orders_by_user,
            &self.views_by_user,
            &self.orders_by_category,
        ]
    }
}

/// This process's part of the job: one task group per stage.
pub struct ScaledShop {
    settings: ShopSettings,
    kafka: KafkaConfig,
    tables: ShopTables,
    repartitions: Repartitions,
    store: TaskStore,
}

impl ScaledShop {
    /// The stages of the job reading `kafka` and writing `tables`; creates the repartition
    /// topics if missing.
    ///
    /// # Errors
    /// Settings without a Kafka cluster, a state directory or a checkpoint store; a
    /// repartition topic that cannot be created.
    pub fn new(settings: &ShopSettings, kafka: &KafkaConfig, tables: &ShopTables) -> Result<Self, ShopError> {
        let (Some(state_dir), Some(store)) = (&settings.state_dir, &settings.checkpoint_store) else {
            return Err(ShopError::Setting {
                key: "scale-out".into(),
                reason: "needs --state-dir and --checkpoint-store".into(),
            });
        };
        let store = TaskStore::new(state_dir, store, settings.checkpoint_interval);
        let repartitions = Repartitions::new(settings, kafka);
        for r in repartitions.all() {
            ensure_topic(kafka, r.topic(), settings.partitions).map_err(|e| ShopError::Kafka {
                brokers: kafka.brokers().to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(ScaledShop {
            settings: settings.clone(),
            kafka: kafka.clone(),
            tables: tables.clone(),
            repartitions,
            store,
        })
    }

    /// The task group of `stage`.
    pub fn group(&self, stage: Stage) -> TaskGroup {
        let r = &self.repartitions;
        let lead = match stage {
            Stage::Orders => self.settings.orders_topic.clone(),
            Stage::Views => self.settings.page_views_topic.clone(),
            Stage::Users => r.orders_by_user.topic().to_string(),
            Stage::Categories => r.orders_by_category.topic().to_string(),
        };
        TaskGroup::new(
            self.kafka.clone(),
            stage_group(&self.settings.group, stage.name()),
            lead,
        )
    }

    /// The job of task `q` of `stage`. Its local state directory is emptied first: the
    /// checkpoint store holds the newest state of every task.
    ///
    /// # Errors
    /// A state directory that cannot be emptied; a checkpoint store URL the S3 client does
    /// not take.
    pub fn task_job(&self, stage: Stage, q: u32) -> sluice_engine::Result<Job> {
        let config = self.store.job_config("ecommerce", stage.name(), q)?;
        let (settings, kafka, tables, r) = (
            self.settings.clone(),
            self.kafka.clone(),
            self.tables.clone(),
            self.repartitions.clone(),
        );
        Job::new(config, move |b| {
            build_task(b, stage, q, &settings, &kafka, &tables, &r);
            Ok(())
        })
    }

    /// Runs every stage's task group until `stop` is set, then hands the tasks over and
    /// leaves the groups. A group that fails sets `stop`, so the others hand over too.
    ///
    /// # Errors
    /// The first group that failed.
    pub fn run(self: &Arc<Self>, stop: &Arc<AtomicBool>) -> Result<(), ShopError> {
        let stages = Stage::ALL
            .into_iter()
            .map(|stage| {
                let shop = Arc::clone(self);
                let jobs: TaskJobs = Box::new(move |q| shop.task_job(stage, q));
                (stage.name().to_string(), self.group(stage), jobs)
            })
            .collect();
        run_stages(stages, stop).map_err(ShopError::Refused)
    }
}

/// The job of task `q` of `stage`.
fn build_task(
    b: &mut JobBuilder,
    stage: Stage,
    q: u32,
    settings: &ShopSettings,
    kafka: &KafkaConfig,
    tables: &ShopTables,
    r: &Repartitions,
) {
    let task = [q];
    match stage {
        Stage::Orders => {
            let orders: Stream<Located<Order>> = b.source(
                "orders",
                source::<Order>(settings, kafka, &settings.orders_topic)
                    .only_partitions(&task)
                    .start_from(StartFrom::Earliest)
                    .located(),
                WatermarkStrategy::bounded_out_of_orderness(OUT_OF_ORDERNESS)
                    .with_timestamps(|o: &Located<Order>| o.value.ts)
                    .with_idleness(PARTITION_IDLENESS),
            );
            let values = orders.map("order_values", |o| o.value);
            product_revenue(&values).sink("product_revenue_1m_table", tables.product_revenue.clone());
            let (by_user, by_category) = (
                r.orders_by_user.clone().upstream_partitions(&task),
                r.orders_by_category.clone().upstream_partitions(&task),
            );
            orders.sink(
                "orders_by_user_write",
                by_user.writer(|o: &Order| o.user_id.clone()),
            );
            orders.sink(
                "orders_by_category_write",
                by_category.writer(|o: &Order| o.category.clone()),
            );
        }
        Stage::Views => {
            let views: Stream<Located<PageView>> = b.source(
                "page_views",
                source::<PageView>(settings, kafka, &settings.page_views_topic)
                    .only_partitions(&task)
                    .start_from(StartFrom::Earliest)
                    .located(),
                WatermarkStrategy::bounded_out_of_orderness(OUT_OF_ORDERNESS)
                    .with_timestamps(|v: &Located<PageView>| v.value.ts)
                    .with_idleness(PARTITION_IDLENESS),
            );
            let by_user = r.views_by_user.clone().upstream_partitions(&task);
            views.sink(
                "views_by_user_write",
                by_user.writer(|v: &PageView| v.user_id.clone()),
            );
        }
        Stage::Users => {
            let orders_in = r.orders_by_user.clone().only_partitions(&task);
            let views_in = r.views_by_user.clone().only_partitions(&task);
            let orders = b.source(
                "orders_by_user_read",
                orders_in.reader::<Order>(),
                orders_in.watermarks(),
            );
            let views = b.source(
                "views_by_user_read",
                views_in.reader::<PageView>(),
                views_in.watermarks(),
            );
            users(&orders, &views, tables);
        }
        Stage::Categories => {
            let input = r.orders_by_category.clone().only_partitions(&task);
            let orders = b.source(
                "orders_by_category_read",
                input.reader::<Order>(),
                input.watermarks(),
            );
            category_revenue(&orders, tables);
        }
    }
}
