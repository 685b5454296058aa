//! Payments: deposits and withdrawals on accounts in three currencies.

use serde::{Deserialize, Serialize};

use super::{event_time, mix};

const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

/// A payment on an account (key = `account_id`); negative amounts are withdrawals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payment {
    /// Unique payment id.
    pub payment_id: String,
    /// The account.
    pub account_id: String,
    /// The account's currency.
    pub currency: String,
    /// Amount in cents; negative for withdrawals.
    pub amount_cents: i64,
    /// Event time, epoch milliseconds.
    pub ts: i64,
}

/// Settings of the payment stream.
#[derive(Debug, Clone)]
pub struct PaymentGenerator {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of accounts.
    pub accounts: u64,
    /// Event time of the first payment (epoch ms).
    pub start_ts: i64,
    /// Payments per second of event time.
    pub payments_per_second: u64,
    /// Largest delay of a payment behind its position in the stream (ms).
    pub max_disorder_ms: i64,
    /// Number of partitions the payments are spread over.
    pub partitions: u32,
}

impl Default for PaymentGenerator {
    fn default() -> Self {
        PaymentGenerator {
            seed: 23,
            accounts: 10_000,
            start_ts: 1_764_115_200_000,
            payments_per_second: 500,
            max_disorder_ms: 3_000,
            partitions: 4,
        }
    }
}

impl PaymentGenerator {
    /// The `index`-th payment of `partition`.
    pub fn payment(&self, partition: u32, index: u64) -> Payment {
        self.nth(index * u64::from(self.partitions.max(1)) + u64::from(partition))
    }

    /// The `n`-th payment of the whole stream.
    pub fn nth(&self, n: u64) -> Payment {
        let r = mix(self.seed ^ mix(n));
        let account = mix(r ^ 0x5555) % self.accounts.max(1);
        let magnitude = 100 + (mix(r ^ 0xAAAA) % 50_000) as i64;
        // Three deposits for every two withdrawals.
        let amount_cents = if r % 5 < 3 { magnitude } else { -magnitude };
        Payment {
            payment_id: format!("tx-{n}"),
            account_id: format!("acct-{account}"),
            currency: CURRENCIES[(mix(self.seed ^ account) % CURRENCIES.len() as u64) as usize].to_string(),
            amount_cents,
            ts: event_time(
                self.start_ts,
                n,
                self.payments_per_second,
                self.max_disorder_ms,
                r,
            ),
        }
    }
}
