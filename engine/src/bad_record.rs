//! What happens to a record that cannot be read or written: one vocabulary for every source,
//! sink and configuration file.

use std::fmt;
use std::str::FromStr;

/// What a source does with a record it cannot decode (or whose timestamp is unusable), and
/// what a sink does with a row its store refuses for good.
///
/// `D` is where dead letters go, as the connector names it: a Kafka topic, a
/// [`SinkFactory`](crate::SinkFactory) of dead-letter records. A connector that has no
/// dead-letter destination uses [`NoDeadLetters`], so `DeadLetter` cannot be chosen for it.
///
/// Configuration files and flags spell the choices `fail`, `skip` and `dead-letter`; parse
/// them as `OnBadRecord<()>` and map the dead-letter case to a destination with
/// [`OnBadRecord::map_dead_letters`].
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadRecord<D = NoDeadLetters> {
    /// Stop the job with an error naming where the record came from (the default).
    #[default]
    Fail,
    /// Drop the record and go on (sources count it in `bad_records_skipped`; the Cassandra
    /// sink logs it with its key).
    Skip,
    /// Hand the record to `D` with where it came from and why it was refused, and go on.
    DeadLetter(D),
}

/// The dead-letter destination of a connector that has none: no value of it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDeadLetters {}

impl<D> OnBadRecord<D> {
    /// The same choice with the dead-letter destination mapped by `f`.
    pub fn map_dead_letters<E>(self, f: impl FnOnce(D) -> E) -> OnBadRecord<E> {
        match self {
            OnBadRecord::Fail => OnBadRecord::Fail,
            OnBadRecord::Skip => OnBadRecord::Skip,
            OnBadRecord::DeadLetter(d) => OnBadRecord::DeadLetter(f(d)),
        }
    }

    /// The same choice with the dead-letter destination borrowed.
    pub fn as_ref(&self) -> OnBadRecord<&D> {
        match self {
            OnBadRecord::Fail => OnBadRecord::Fail,
            OnBadRecord::Skip => OnBadRecord::Skip,
            OnBadRecord::DeadLetter(d) => OnBadRecord::DeadLetter(d),
        }
    }

    /// What the engine does once the connector has dead-lettered a record itself: for the
    /// engine, a dead-lettered record is a skipped one.
    pub fn after_dead_letters(&self) -> OnBadRecord {
        match self {
            OnBadRecord::Fail => OnBadRecord::Fail,
            OnBadRecord::Skip | OnBadRecord::DeadLetter(_) => OnBadRecord::Skip,
        }
    }

    /// The choice as configuration files spell it: `fail`, `skip` or `dead-letter`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OnBadRecord::Fail => "fail",
            OnBadRecord::Skip => "skip",
            OnBadRecord::DeadLetter(_) => "dead-letter",
        }
    }
}

/// Shows the choice without its destination, which may hold connection settings.
impl<D> fmt::Debug for OnBadRecord<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnBadRecord::Fail => f.write_str("Fail"),
            OnBadRecord::Skip => f.write_str("Skip"),
            OnBadRecord::DeadLetter(_) => f.write_str("DeadLetter(..)"),
        }
    }
}

impl<D> fmt::Display for OnBadRecord<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `fail`, `skip` or `dead-letter`; the destination is configured apart.
impl FromStr for OnBadRecord<()> {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(OnBadRecord::Fail),
            "skip" => Ok(OnBadRecord::Skip),
            "dead-letter" => Ok(OnBadRecord::DeadLetter(())),
            other => Err(format!(
                "unknown bad-record choice '{other}' (expected fail, skip or dead-letter)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_choices_parse_from_their_configuration_spelling_and_print_back() {
        for (text, choice) in [
            ("fail", OnBadRecord::Fail),
            ("skip", OnBadRecord::Skip),
            ("dead-letter", OnBadRecord::DeadLetter(())),
        ] {
            assert_eq!(text.parse::<OnBadRecord<()>>(), Ok(choice));
            assert_eq!(choice.to_string(), text);
        }
    }

    #[test]
    fn an_unknown_choice_is_refused_naming_the_value_and_the_choices() {
        let err = "drop".parse::<OnBadRecord<()>>().expect_err("not a choice");
        assert!(err.contains("'drop'"), "{err}");
        assert!(err.contains("fail, skip or dead-letter"), "{err}");
    }

    #[test]
    fn a_destination_is_mapped_and_hidden_from_debug_output() {
        let topic = OnBadRecord::DeadLetter(()).map_dead_letters(|()| "orders-dlq".to_string());
        assert_eq!(topic, OnBadRecord::DeadLetter("orders-dlq".to_string()));
        assert_eq!(format!("{topic:?}"), "DeadLetter(..)");
        assert_eq!(
            topic.as_ref().map_dead_letters(String::len),
            OnBadRecord::DeadLetter(10)
        );
    }

    #[test]
    fn for_the_engine_a_dead_lettered_record_is_a_skipped_one() {
        assert_eq!(OnBadRecord::DeadLetter(7).after_dead_letters(), OnBadRecord::Skip);
        assert_eq!(OnBadRecord::<u8>::Skip.after_dead_letters(), OnBadRecord::Skip);
        assert_eq!(OnBadRecord::<u8>::Fail.after_dead_letters(), OnBadRecord::Fail);
    }
}
