//! The summary printed after a run, built only from SELECTs on the result tables.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use sluice_cassandra::scylla::value::CqlTimestamp;
use sluice_cassandra::{CassandraConfig, CassandraError, read_rows};

use super::tables::ProductRevenue;

/// What the result tables say.
#[derive(Debug, Clone, Default)]
pub struct ShopReport {
    /// Rows per table, in the order product, category, sessions, conversions.
    pub rows: [u64; 4],
    /// The last complete minute (the newest one is usually cut short by the end of input).
    pub minute: Option<i64>,
    /// The best-selling products of that minute, by revenue.
    pub top_products: Vec<ProductRevenue>,
    /// Starts of the newest 5-minute category windows, oldest first.
    pub trend_windows: Vec<i64>,
    /// Revenue per category in those windows, best category first.
    pub category_trend: Vec<(String, Vec<i64>)>,
    /// Sessions, distinct users, orders and summed duration (ms) over all sessions.
    pub sessions: (u64, u64, u64, i64),
    /// Orders with views before them, views counted, summed time from first view to order (ms).
    pub conversions: (u64, u64, i64),
}

impl ShopReport {
    /// Reads the tables of `config`'s keyspace; `top` rows in the product list, `trend`
    /// windows in the category trend.
    pub fn read(config: &CassandraConfig, top: usize, trend: usize) -> Result<Self, CassandraError> {
        let ks = config.keyspace();
        let mut report = ShopReport::default();

        let products = read_rows::<(String, CqlTimestamp, i64, i64, i64)>(
            config,
            &format!(
                "SELECT product_id, window_start, revenue_cents, orders, units FROM {ks}.product_revenue_1m"
            ),
        )?;
        report.rows[0] = products.len() as u64;
        let minutes: BTreeSet<i64> = products.iter().map(|r| r.1.0).collect();
        report.minute = minutes.iter().rev().nth(1).or(minutes.last()).copied();
        let mut top_products: Vec<ProductRevenue> = products
            .into_iter()
            .filter(|r| Some(r.1.0) == report.minute)
            .map(
                |(product_id, start, revenue_cents, orders, units)| ProductRevenue {
                    product_id,
                    window_start: start.0,
                    revenue_cents,
                    orders,
                    units,
                },
            )
            .collect();
        top_products.sort_by(|a, b| {
            b.revenue_cents
                .cmp(&a.revenue_cents)
                .then(a.product_id.cmp(&b.product_id))
        });
        top_products.truncate(top);
        report.top_products = top_products;

        let categories = read_rows::<(String, CqlTimestamp, i64)>(
            config,
            &format!("SELECT category, window_start, revenue_cents FROM {ks}.category_revenue_5m"),
        )?;
        report.rows[1] = categories.len() as u64;
        // Sliding windows at the end of input cover less and less of it; leave out the 4
        // newest, which extend past the last complete minute.
        let starts: BTreeSet<i64> = categories.iter().map(|r| r.1.0).collect();
        let complete: Vec<i64> = starts.iter().rev().skip(4).take(trend).rev().copied().collect();
        let mut per_category: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (category, start, revenue) in categories {
            if let Some(i) = complete.iter().position(|s| *s == start.0) {
                per_category
                    .entry(category)
                    .or_insert_with(|| vec![0; complete.len()])[i] = revenue;
            }
        }
        let mut trend_rows: Vec<(String, Vec<i64>)> = per_category.into_iter().collect();
        trend_rows.sort_by_key(|(c, v)| (std::cmp::Reverse(v.last().copied().unwrap_or(0)), c.clone()));
        report.trend_windows = complete;
        report.category_trend = trend_rows;

        let sessions = read_rows::<(String, CqlTimestamp, CqlTimestamp, i64)>(
            config,
            &format!("SELECT user_id, session_start, session_end, orders FROM {ks}.user_sessions"),
        )?;
        report.rows[2] = sessions.len() as u64;
        let users: HashSet<&str> = sessions.iter().map(|s| s.0.as_str()).collect();
        report.sessions = (
            sessions.len() as u64,
            users.len() as u64,
            sessions.iter().map(|s| s.3 as u64).sum(),
            sessions.iter().map(|s| s.2.0 - s.1.0).sum(),
        );

        let conversions = read_rows::<(CqlTimestamp, i64, CqlTimestamp)>(
            config,
            &format!("SELECT order_ts, views_before, first_view_ts FROM {ks}.conversions"),
        )?;
        report.rows[3] = conversions.len() as u64;
        report.conversions = (
            conversions.len() as u64,
            conversions.iter().map(|c| c.1 as u64).sum(),
            conversions.iter().map(|c| c.0.0 - c.2.0).sum(),
        );
        Ok(report)
    }
}

impl fmt::Display for ShopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [products, categories, sessions, conversions] = self.rows;
        writeln!(
            f,
            "Rows written: product_revenue_1m {}, category_revenue_5m {}, user_sessions {}, conversions {}",
            thousands(products),
            thousands(categories),
            thousands(sessions),
            thousands(conversions)
        )?;
        if let Some(minute) = self.minute {
            writeln!(
                f,
                "\nTop products in the minute from {} (product_revenue_1m):",
                utc(minute)
            )?;
            writeln!(
                f,
                "  {:<10} {:>12} {:>7} {:>7}",
                "product", "revenue", "orders", "units"
            )?;
            for p in &self.top_products {
                writeln!(
                    f,
                    "  {:<10} {:>12} {:>7} {:>7}",
                    p.product_id,
                    dollars(p.revenue_cents),
                    p.orders,
                    p.units
                )?;
            }
        }
        if !self.trend_windows.is_empty() {
            writeln!(
                f,
                "\nRevenue per category over 5 minutes, sliding by 1 (category_revenue_5m):"
            )?;
            write!(f, "  {:<12}", "window from")?;
            for start in &self.trend_windows {
                let clock = utc_clock(*start);
                write!(f, " {:>11}", clock.trim_end_matches(" UTC"))?;
            }
            writeln!(f)?;
            for (category, revenue) in &self.category_trend {
                write!(f, "  {category:<12}")?;
                for r in revenue {
                    write!(f, " {:>11}", dollars(*r))?;
                }
                writeln!(f)?;
            }
        }
        let (count, users, orders, duration_ms) = self.sessions;
        if count > 0 {
            writeln!(
                f,
                "\nSessions (user_sessions, 30-minute gap): {} sessions of {} users, {:.2} orders and {:.1} minutes per session",
                thousands(count),
                thousands(users),
                orders as f64 / count as f64,
                duration_ms as f64 / count as f64 / 60_000.0
            )?;
        }
        let (orders, views, lead_ms) = self.conversions;
        if orders > 0 {
            writeln!(
                f,
                "Conversions (orders with the buyer's page views in the 30 minutes before): {}, {:.1} views and {:.1} minutes from first view to order on average",
                thousands(orders),
                views as f64 / orders as f64,
                lead_ms as f64 / orders as f64 / 60_000.0
            )?;
        }
        Ok(())
    }
}

/// `$1,234.56` for cents.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}${}.{:02}", thousands(cents / 100), cents % 100)
}

/// `1,234,567` for 1234567.
pub fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// Latest epoch millisecond with a four-digit year (9999-12-31 23:59:59.999 UTC).
const MAX_UTC_MS: i64 = 253_402_300_799_999;

/// `YYYY-MM-DD HH:MM UTC` for epoch milliseconds; a time before 1970 or after 9999 (the
/// watermark before any record, say) as `<n> ms`.
pub fn utc(ms: i64) -> String {
    let since_epoch = match u64::try_from(ms) {
        Ok(ms) if ms <= MAX_UTC_MS as u64 => Duration::from_millis(ms),
        _ => return format!("{ms} ms"),
    };
    let text = humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string();
    format!("{} {} UTC", &text[..10], &text[11..16])
}

/// The `HH:MM UTC` of [`utc`], or all of it when it is not a date.
pub fn utc_clock(ms: i64) -> String {
    let full = utc(ms);
    match full.split_once(' ') {
        Some((_date, clock)) if full.ends_with(" UTC") => clock.to_string(),
        _ => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(dollars(123_456), "$1,234.56");
        assert_eq!(dollars(-5), "-$0.05");
        assert_eq!(utc(1_764_115_200_000), "2025-11-26 00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_764_157_979_999), "2025-11-26 11:52 UTC");
        assert_eq!(utc(-1), "-1 ms");
        assert_eq!(utc(i64::MAX), format!("{} ms", i64::MAX));
        assert_eq!(utc_clock(1_764_157_979_999), "11:52 UTC");
        assert_eq!(utc_clock(-1), "-1 ms");
    }
}
