//! Setting values the e-commerce job and declarative pipelines share: the bad-record policy
//! and durations as people write them.

use std::time::Duration;

/// What a job does with a record that cannot be decoded: `fail` (stop, naming topic,
/// partition and offset), `skip` (counted in `bad_records_skipped`) or `dead-letter` (written
/// unchanged to the job's dead-letter topic with the error as a header). The topic is
/// configured apart, so the choice carries no destination.
pub type OnBadRecord = sluice_engine::OnBadRecord<()>;

/// Reads an optional [`OnBadRecord`] as configuration files spell it.
pub(crate) fn de_on_bad_record<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<OnBadRecord>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// Reads an optional duration as configuration files spell it: a number of seconds (`10`)
/// or text [`parse_duration`] reads (`"500ms"`, `"2m"`).
pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match <Raw as serde::Deserialize>::deserialize(d)? {
        Raw::Seconds(s) => Ok(Some(Duration::from_secs(s))),
        Raw::Text(t) => parse_duration(&t).map(Some).map_err(serde::de::Error::custom),
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
