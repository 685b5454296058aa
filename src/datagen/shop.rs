//! Orders and page views with skewed product popularity and bounded disorder.

use serde::{Deserialize, Serialize};

use super::{event_time, mix, unit};

/// An order event, as produced to the `orders` topic (key = `product_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Order {
    /// Unique order id.
    pub order_id: String,
    /// Buyer.
    pub user_id: String,
    /// Product bought.
    pub product_id: String,
    /// Product category.
    pub category: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Units bought.
    pub quantity: i64,
    /// Event time, epoch milliseconds.
    pub ts: i64,
}

impl Order {
    /// `price_cents * quantity`.
    pub fn revenue_cents(&self) -> i64 {
        self.price_cents * self.quantity
    }
}

const CATEGORIES: [&str; 8] = [
    "books",
    "electronics",
    "garden",
    "toys",
    "fashion",
    "grocery",
    "sports",
    "beauty",
];

/// Settings of the order stream.
#[derive(Debug, Clone)]
pub struct OrderGenerator {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of distinct products (popularity follows a power law).
    pub products: u64,
    /// Number of distinct users.
    pub users: u64,
    /// Event time of the first order (epoch ms).
    pub start_ts: i64,
    /// Orders per second of event time, over all partitions.
    pub orders_per_second: u64,
    /// Largest delay of an order's timestamp behind its position in the stream (ms).
    pub max_disorder_ms: i64,
    /// Number of partitions the orders are spread over (record `i` of partition `p` is the
    /// `i * partitions + p`-th order).
    pub partitions: u32,
}

impl Default for OrderGenerator {
    fn default() -> Self {
        OrderGenerator {
            seed: 42,
            products: 10_000,
            users: 100_000,
            start_ts: 1_764_115_200_000,
            orders_per_second: 2_000,
            max_disorder_ms: 4_000,
            partitions: 4,
        }
    }
}

impl OrderGenerator {
    /// The `index`-th order of `partition`.
    pub fn order(&self, partition: u32, index: u64) -> Order {
        let n = index * u64::from(self.partitions.max(1)) + u64::from(partition);
        self.nth(n)
    }

    /// The `n`-th order of the whole stream.
    pub fn nth(&self, n: u64) -> Order {
        let r = mix(self.seed ^ mix(n));
        // Power-law popularity: low product numbers sell most.
        let product = ((unit(r).powi(3)) * self.products as f64) as u64;
        let price_cents = 199 + (mix(self.seed ^ product) % 20_000) as i64;
        let user = mix(r ^ 0x5555) % self.users.max(1);
        let quantity = 1 + (mix(r ^ 0xAAAA) % 4) as i64;
        let ts = event_time(self.start_ts, n, self.orders_per_second, self.max_disorder_ms, r);
        Order {
            order_id: format!("o-{n}"),
            user_id: format!("u-{user}"),
            product_id: format!("p-{product}"),
            category: CATEGORIES[(mix(self.seed ^ product ^ 0x77) % CATEGORIES.len() as u64) as usize]
                .to_string(),
            price_cents,
            quantity,
            ts,
        }
    }
}

/// A page-view event, as produced to the `page_views` topic (key = `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageView {
    /// Viewer.
    pub user_id: String,
    /// Product viewed.
    pub product_id: String,
    /// Page address.
    pub url: String,
    /// Event time, epoch milliseconds.
    pub ts: i64,
}

/// Settings of the page-view stream; with the same `users`, `products` and `start_ts` as an
/// [`OrderGenerator`], views and orders cover the same users, products and time.
#[derive(Debug, Clone)]
pub struct PageViewGenerator {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of distinct products (popularity follows a power law).
    pub products: u64,
    /// Number of distinct users.
    pub users: u64,
    /// Event time of the first view (epoch ms).
    pub start_ts: i64,
    /// Views per second of event time, over all partitions.
    pub views_per_second: u64,
    /// Largest delay of a view's timestamp behind its position in the stream (ms).
    pub max_disorder_ms: i64,
    /// Number of partitions the views are spread over.
    pub partitions: u32,
}

impl Default for PageViewGenerator {
    fn default() -> Self {
        let orders = OrderGenerator::default();
        PageViewGenerator {
            seed: 7,
            products: orders.products,
            users: orders.users,
            start_ts: orders.start_ts,
            views_per_second: 5 * orders.orders_per_second,
            max_disorder_ms: orders.max_disorder_ms,
            partitions: orders.partitions,
        }
    }
}

impl PageViewGenerator {
    /// The `index`-th view of `partition`.
    pub fn view(&self, partition: u32, index: u64) -> PageView {
        let n = index * u64::from(self.partitions.max(1)) + u64::from(partition);
        self.nth(n)
    }

    /// The `n`-th view of the whole stream.
    pub fn nth(&self, n: u64) -> PageView {
        let r = mix(self.seed ^ mix(n ^ 0xBEEF));
        let product = ((unit(r).powi(3)) * self.products as f64) as u64;
        let user = mix(r ^ 0x5555) % self.users.max(1);
        let ts = event_time(self.start_ts, n, self.views_per_second, self.max_disorder_ms, r);
        PageView {
            user_id: format!("u-{user}"),
            product_id: format!("p-{product}"),
            url: format!("/p/p-{product}"),
            ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_skewed_and_bounded() {
        let g = OrderGenerator::default();
        assert_eq!(g.order(1, 7), g.order(1, 7));
        let orders: Vec<Order> = (0..20_000).map(|n| g.nth(n)).collect();
        let top = orders.iter().filter(|o| o.product_id == "p-0").count();
        assert!(top > 100, "the most popular product should be frequent: {top}");
        let mut max_ts = i64::MIN;
        for o in &orders {
            assert!(
                o.ts >= max_ts.saturating_sub(g.max_disorder_ms + 1),
                "disorder beyond bound"
            );
            max_ts = max_ts.max(o.ts);
        }
        let json = serde_json::to_string(&orders[0]).unwrap();
        assert!(json.starts_with("{\"order_id\":\"o-0\",\"user_id\":"), "{json}");
    }
}
