//! The e-commerce job: orders and page views from Kafka → revenue per product per minute,
//! revenue per category over sliding 5 minutes, user sessions and conversions → Cassandra.
//!
//! The `ecommerce` example is a command line over this module; the end-to-end tests run the
//! same job through it.
//!
//! ```no_run
//! use sluice_cli::shop::{Shop, ShopSettings};
//! # fn main() -> Result<(), sluice_cli::shop::ShopError> {
//! // No brokers or store named: in-process ones are started.
//! let shop = Shop::start(ShopSettings { events: 10_000, ..ShopSettings::default() })?;
//! let job = shop.job()?.start()?;
//! shop.produce_alongside(&job, |_| {})?;
//! job.join()?;
//! println!("{}", shop.report(5, 6)?);
//! # Ok(())
//! # }
//! ```
//!
//! Input: orders as JSON keyed by `product_id`
//! (`{"order_id":"o-1","user_id":"u-42","product_id":"p-7","category":"books","price_cents":1999,"quantity":2,"ts":1764115200000}`),
//! page views keyed by `user_id` (`{"user_id":"u-42","product_id":"p-7","url":"/p/p-7","ts":1764115100000}`).
//! Each partition's watermark is its largest `ts` − 5 s; windows allow no lateness.

mod error;
mod pipeline;
mod produce;
mod report;
mod scale_out;
mod services;
mod settings;
mod tables;

pub use error::ShopError;
pub use pipeline::{
    OUT_OF_ORDERNESS, PARTITION_IDLENESS, checkpoint_store, job_config, product_revenue, shop_job,
};
pub use produce::{MALFORMED_ORDERS, ProduceSpec, Produced, ShopData, VIEWS_PER_ORDER, produce};
pub use report::{ShopReport, dollars, thousands, utc, utc_clock};
pub use scale_out::{ScaledShop, Stage};
pub use settings::{
    OnBadRecord, PartialSettings, ShopSettings, bearer_token, parse_duration, parse_listen_addr,
};
pub use tables::{
    ATTRIBUTION_WINDOW, CategoryRevenue, Conversion, ProductRevenue, SESSION_GAP, ShopTables, UserSession,
};

use std::time::Duration;

use sluice_engine::{Job, JobHandle, JobMetrics};

use crate::embedded::Endpoints;
use crate::producer::LagLimit;

/// Orders and page views the job has read.
pub fn records_read(metrics: &JobMetrics) -> u64 {
    metrics.total("orders", "records_out") + metrics.total("page_views", "records_out")
}

/// The job with its services running and its tables in place.
pub struct Shop {
    settings: ShopSettings,
    services: Endpoints,
    tables: ShopTables,
    data: ShopData,
}

impl Shop {
    /// Checks the settings, starts or reaches the services, creates missing topics and tables
    /// and checks the tables' columns, so that everything the job needs is known to work.
    pub fn start(settings: ShopSettings) -> Result<Shop, ShopError> {
        settings.validate()?;
        let services = services::start_services(&settings)?;
        let tables = ShopTables::new(&services.cql);
        tables.connect()?;
        Ok(Shop {
            settings,
            services,
            tables,
            data: ShopData::default(),
        })
    }

    /// The settings the job runs with.
    pub fn settings(&self) -> &ShopSettings {
        &self.settings
    }

    /// The services it talks to.
    pub fn services(&self) -> &Endpoints {
        &self.services
    }

    /// The generated data set.
    pub fn data(&self) -> &ShopData {
        &self.data
    }

    /// Produces the configured number of generated orders and page views (nothing when
    /// `events` is 0); `progress` is called with the records produced so far. The in-process
    /// broker keeps only the newest 5 MB of each partition, about 25,000 orders: for more,
    /// use [`Shop::produce_alongside`].
    pub fn produce(&self, progress: impl FnMut(u64)) -> Result<Produced, ShopError> {
        produce(
            &self.services.kafka,
            &ProduceSpec::from_settings(&self.settings),
            &self.data,
            progress,
        )
    }

    /// Produces the input while `job` runs, with at most
    /// [`EMBEDDED_MAX_LAG`](crate::embedded::EMBEDDED_MAX_LAG) records
    /// produced but not yet read when the broker is the in-process one, which keeps only the
    /// newest 5 MB of each partition; `progress` gets the records produced so far. Into the
    /// in-process broker it starts once the job's consumers hold every partition, so that all
    /// partitions are read from their first record on. Stops waiting for the job if it ends.
    pub fn produce_alongside(
        &self,
        job: &JobHandle,
        mut progress: impl FnMut(u64),
    ) -> Result<Produced, ShopError> {
        let limit = LagLimit::new(job, &["orders", "page_views"], self.services.max_lag());
        if self.services.kafka_is_embedded() {
            // The job created these topics: wait until its consumers hold all partitions.
            limit.wait_for_assignment(2 * i64::from(self.settings.partitions), Duration::from_secs(60));
        }
        self.produce(|produced| {
            progress(produced);
            limit.wait(produced);
        })
    }

    /// This process's part of the job spread over processes (`scale_out`): creates the
    /// repartition topics if missing.
    ///
    /// # Errors
    /// A repartition topic that cannot be created.
    pub fn scaled(&self) -> Result<ScaledShop, ShopError> {
        ScaledShop::new(&self.settings, &self.services.kafka, &self.tables)
    }

    /// The job, ready to run or start.
    pub fn job(&self) -> Result<Job, ShopError> {
        Ok(shop_job(&self.settings, &self.services.kafka, &self.tables)?)
    }

    /// The result tables' sinks.
    pub fn tables(&self) -> &ShopTables {
        &self.tables
    }

    /// Reads the result tables back.
    pub fn report(&self, top: usize, trend: usize) -> Result<ShopReport, ShopError> {
        Ok(ShopReport::read(&self.services.cql, top, trend)?)
    }
}
