//! The job's result tables: one row type per table, its key layout and its sink.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_cassandra::{
    CassandraConfig, CassandraError, CassandraSink, SinkStats, TableSchema, render_sink_stats,
};
use sluice_operators::WindowResult;

/// Gap that ends a user's session.
pub const SESSION_GAP: Duration = Duration::from_secs(30 * 60);

/// How far before an order its page views count towards the conversion.
pub const ATTRIBUTION_WINDOW: Duration = Duration::from_secs(30 * 60);

/// `product_revenue_1m`: revenue of one product in one 1-minute tumbling event-time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRevenue {
    /// Partition key.
    pub product_id: String,
    /// Clustering key: the window's first millisecond.
    pub window_start: i64,
    /// Sum of `price_cents * quantity`.
    pub revenue_cents: i64,
    /// Orders in the window.
    pub orders: i64,
    /// Units sold in the window.
    pub units: i64,
}

impl ProductRevenue {
    /// The row of a window result of `(revenue, orders, units)`.
    pub fn from_window(w: WindowResult<String, (i64, u64, i64)>) -> Self {
        ProductRevenue {
            product_id: w.key,
            window_start: w.window.start,
            revenue_cents: w.value.0,
            orders: w.value.1 as i64,
            units: w.value.2,
        }
    }
}

/// `category_revenue_5m`: revenue of one category in a 5-minute window sliding every minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRevenue {
    /// Partition key.
    pub category: String,
    /// Clustering key: the window's first millisecond.
    pub window_start: i64,
    /// Sum of `price_cents * quantity`.
    pub revenue_cents: i64,
    /// Orders in the window.
    pub orders: i64,
}

impl CategoryRevenue {
    /// The row of a window result of `(revenue, orders)`.
    pub fn from_window(w: WindowResult<String, (i64, u64)>) -> Self {
        CategoryRevenue {
            category: w.key,
            window_start: w.window.start,
            revenue_cents: w.value.0,
            orders: w.value.1 as i64,
        }
    }
}

/// `user_sessions`: a user's orders with less than [`SESSION_GAP`] between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSession {
    /// Partition key.
    pub user_id: String,
    /// Clustering key: time of the session's first order.
    pub session_start: i64,
    /// Time of the session's last order.
    pub session_end: i64,
    /// Orders in the session.
    pub orders: i64,
    /// Sum of `price_cents * quantity`.
    pub revenue_cents: i64,
}

impl UserSession {
    /// The row of a session window result of `(orders, revenue)`. A session window ends one
    /// gap after its last record.
    pub fn from_window(w: WindowResult<String, (u64, i64)>) -> Self {
        UserSession {
            user_id: w.key,
            session_start: w.window.start,
            session_end: w.window.end - SESSION_GAP.as_millis() as i64,
            orders: w.value.0 as i64,
            revenue_cents: w.value.1,
        }
    }
}

/// `conversions`: an order with the user's page views in the [`ATTRIBUTION_WINDOW`] before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// Partition key.
    pub order_id: String,
    /// The buyer.
    pub user_id: String,
    /// The product bought.
    pub product_id: String,
    /// Time of the order.
    pub order_ts: i64,
    /// The user's page views in the window before the order.
    pub views_before: i64,
    /// Time of the first of those views.
    pub first_view_ts: i64,
}

/// The four sinks of the job, sharing one CQL configuration.
#[derive(Clone)]
pub struct ShopTables {
    /// `product_revenue_1m`.
    pub product_revenue: CassandraSink<ProductRevenue>,
    /// `category_revenue_5m`.
    pub category_revenue: CassandraSink<CategoryRevenue>,
    /// `user_sessions`.
    pub user_sessions: CassandraSink<UserSession>,
    /// `conversions`.
    pub conversions: CassandraSink<Conversion>,
}

impl ShopTables {
    /// Sinks into the keyspace of `config`, each creating its table (and the keyspace) if
    /// missing.
    pub fn new(config: &CassandraConfig) -> Self {
        let windowed = |partition: &str| {
            TableSchema::partition_key([partition])
                .clustering_key(["window_start"])
                .timestamp_columns(["window_start"])
        };
        ShopTables {
            product_revenue: CassandraSink::new(config.clone(), "product_revenue_1m")
                .create_table_if_missing(windowed("product_id")),
            category_revenue: CassandraSink::new(config.clone(), "category_revenue_5m")
                .create_table_if_missing(windowed("category")),
            user_sessions: CassandraSink::new(config.clone(), "user_sessions").create_table_if_missing(
                TableSchema::partition_key(["user_id"])
                    .clustering_key(["session_start"])
                    .timestamp_columns(["session_start", "session_end"]),
            ),
            conversions: CassandraSink::new(config.clone(), "conversions").create_table_if_missing(
                TableSchema::partition_key(["order_id"]).timestamp_columns(["order_ts", "first_view_ts"]),
            ),
        }
    }

    /// The job's metrics and the four sinks' statistics as a Prometheus text page.
    pub fn prometheus_page(&self, metrics: &sluice_engine::JobMetrics) -> String {
        let mut page = sluice_engine::render_prometheus(metrics);
        self.render_stats(&mut page);
        page
    }

    /// Appends the four sinks' statistics to a Prometheus text page.
    pub fn render_stats(&self, out: &mut String) {
        let stats = [
            self.product_revenue.stats(),
            self.category_revenue.stats(),
            self.user_sessions.stats(),
            self.conversions.stats(),
        ];
        let names = [
            "product_revenue_1m",
            "category_revenue_5m",
            "user_sessions",
            "conversions",
        ];
        let sinks: Vec<(&str, &SinkStats)> = names.iter().copied().zip(stats.iter().map(|s| &**s)).collect();
        render_sink_stats(out, &sinks);
    }

    /// Connects every sink, creating missing tables and checking the row types against them,
    /// so an unreachable store or a mismatched table is reported before the job starts.
    pub fn connect(&self) -> Result<(), CassandraError> {
        self.product_revenue.connect()?;
        self.category_revenue.connect()?;
        self.user_sessions.connect()?;
        self.conversions.connect()
    }
}
