//! The e-commerce job's four tables as read back over CQL, and as a batch computation over
//! all of the input at once gives them.

use std::collections::{BTreeMap, HashMap};

use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraConfig, read_rows};
use sluice_cli::datagen::{Order, PageView};
use sluice_cli::shop::{ATTRIBUTION_WINDOW, SESSION_GAP, ShopData, VIEWS_PER_ORDER};

/// A table: (key, start) → the other columns.
pub type Table = BTreeMap<(String, i64), Vec<i64>>;

/// The four tables of the keyspace `config` names.
pub fn read_tables(config: &CassandraConfig) -> [Table; 4] {
    let ks = config.keyspace();
    let ms = |t: CqlTimestamp| t.0;
    let product = read_rows::<(String, CqlTimestamp, i64, i64, i64)>(
        config,
        &format!(
            "SELECT product_id, window_start, revenue_cents, orders, units FROM {ks}.product_revenue_1m"
        ),
    )
    .expect("product_revenue_1m")
    .into_iter()
    .map(|(k, w, r, o, u)| ((k, ms(w)), vec![r, o, u]))
    .collect();
    let category = read_rows::<(String, CqlTimestamp, i64, i64)>(
        config,
        &format!("SELECT category, window_start, revenue_cents, orders FROM {ks}.category_revenue_5m"),
    )
    .expect("category_revenue_5m")
    .into_iter()
    .map(|(k, w, r, o)| ((k, ms(w)), vec![r, o]))
    .collect();
    let sessions = read_rows::<(String, CqlTimestamp, CqlTimestamp, i64, i64)>(
        config,
        &format!("SELECT user_id, session_start, session_end, orders, revenue_cents FROM {ks}.user_sessions"),
    )
    .expect("user_sessions")
    .into_iter()
    .map(|(k, s, e, o, r)| ((k, ms(s)), vec![ms(e), o, r]))
    .collect();
    let conversions = read_rows::<(String, String, String, CqlTimestamp, i64, CqlTimestamp)>(
        config,
        &format!(
            "SELECT order_id, user_id, product_id, order_ts, views_before, first_view_ts FROM {ks}.conversions"
        ),
    )
    .expect("conversions")
    .into_iter()
    .map(|(id, user, product, ts, views, first)| {
        let check = format!("{user}/{product}");
        ((format!("{id} {check}"), ms(ts)), vec![views, ms(first)])
    })
    .collect();
    [product, category, sessions, conversions]
}

/// The four tables computed over the whole input at once.
fn expected_tables(orders: &[Order], views: &[PageView]) -> [Table; 4] {
    let minute = 60_000;
    let mut product = Table::new();
    let mut category = Table::new();
    for o in orders {
        let start = o.ts - o.ts.rem_euclid(minute);
        let row = product
            .entry((o.product_id.clone(), start))
            .or_insert_with(|| vec![0; 3]);
        row[0] += o.revenue_cents();
        row[1] += 1;
        row[2] += o.quantity;
        // The 5-minute windows sliding by a minute that contain the order.
        for k in 0..5 {
            let row = category
                .entry((o.category.clone(), start - k * minute))
                .or_insert_with(|| vec![0; 2]);
            row[0] += o.revenue_cents();
            row[1] += 1;
        }
    }

    let gap = SESSION_GAP.as_millis() as i64;
    let mut by_user: HashMap<&str, Vec<&Order>> = HashMap::new();
    for o in orders {
        by_user.entry(&o.user_id).or_default().push(o);
    }
    let mut sessions = Table::new();
    for (user, mut list) in by_user {
        list.sort_by_key(|o| o.ts);
        let mut current: Option<(i64, Vec<i64>)> = None;
        for o in list {
            match &mut current {
                Some((_, row)) if o.ts - row[0] < gap => {
                    row[0] = o.ts;
                    row[1] += 1;
                    row[2] += o.revenue_cents();
                }
                _ => {
                    if let Some((start, row)) = current.take() {
                        sessions.insert((user.to_string(), start), row);
                    }
                    current = Some((o.ts, vec![o.ts, 1, o.revenue_cents()]));
                }
            }
        }
        if let Some((start, row)) = current {
            sessions.insert((user.to_string(), start), row);
        }
    }

    let window = ATTRIBUTION_WINDOW.as_millis() as i64;
    let mut views_by_user: HashMap<&str, Vec<i64>> = HashMap::new();
    for v in views {
        views_by_user.entry(&v.user_id).or_default().push(v.ts);
    }
    let mut conversions = Table::new();
    for o in orders {
        let before: Vec<i64> = views_by_user
            .get(o.user_id.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|ts| *ts >= o.ts - window && *ts <= o.ts)
            .collect();
        if let Some(first) = before.iter().min() {
            let key = format!("{} {}/{}", o.order_id, o.user_id, o.product_id);
            conversions.insert((key, o.ts), vec![before.len() as i64, *first]);
        }
    }
    [product, category, sessions, conversions]
}

/// Fails unless `tables` are what `events` orders (and their page views) of `data` give.
pub fn assert_tables_match_batch(data: &ShopData, events: u64, tables: &[Table; 4]) {
    if let Some(difference) = tables_differ(data, events, tables) {
        panic!("{difference}");
    }
}

/// How `tables` differ from what `events` orders (and their page views) of `data` give, if
/// they do.
pub fn tables_differ(data: &ShopData, events: u64, tables: &[Table; 4]) -> Option<String> {
    let n = events;
    let orders: Vec<Order> = (0..n).map(|i| data.orders.nth(i)).collect();
    let views: Vec<PageView> = (0..n * VIEWS_PER_ORDER).map(|i| data.views.nth(i)).collect();
    let expected = expected_tables(&orders, &views);
    let names = [
        "product_revenue_1m",
        "category_revenue_5m",
        "user_sessions",
        "conversions",
    ];
    for ((name, got), want) in names.iter().zip(tables).zip(&expected) {
        if want.is_empty() {
            return Some(format!("{name}: the input must produce rows"));
        }
        if got.len() != want.len() {
            return Some(format!(
                "{name}: {} rows, the batch computation {}",
                got.len(),
                want.len()
            ));
        }
        if got != want {
            let wrong = want.iter().filter(|(k, v)| got.get(*k) != Some(*v)).count();
            return Some(format!("{name}: {wrong} rows differ from the batch computation"));
        }
    }
    None
}
