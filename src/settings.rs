//! Setting values the e-commerce job and declarative pipelines share: the bad-record policy
//! and durations as people write them.

use std::str::FromStr;
use std::time::Duration;

/// What a job does with a record that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadRecord {
    /// Stop the job, naming topic, partition and offset.
    Fail,
    /// Skip it (counted in `bad_records_skipped`).
    Skip,
    /// Write it unchanged to `<topic>-dlq` (created if missing), with the error as a header.
    #[default]
    DeadLetter,
}

impl FromStr for OnBadRecord {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(OnBadRecord::Fail),
            "skip" => Ok(OnBadRecord::Skip),
            "dead-letter" => Ok(OnBadRecord::DeadLetter),
            other => Err(format!(
                "'{other}' is not a bad-record policy (fail, skip or dead-letter)"
            )),
        }
    }
}

impl std::fmt::Display for OnBadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnBadRecord::Fail => "fail",
            OnBadRecord::Skip => "skip",
            OnBadRecord::DeadLetter => "dead-letter",
        })
    }
}

/// A duration as `10` (seconds) or with a unit: `500ms`, `1s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration ({e}); e.g. 500ms, 10s, 2m"))
}
