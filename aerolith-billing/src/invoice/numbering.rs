//! Invoice and credit-note numbers: gapless sequences per issuer prefix and year.
//!
//! A number looks like `AER-2026-000001`: the issuer's [`InvoicePrefix`], the
//! UTC year of issue, and a sequence that starts at 1 each year and has no
//! gaps. Numbers come from an [`InvoiceNumberSequence`]; the
//! [`InMemoryInvoiceNumberSequence`] keeps the counters in memory behind a
//! mutex, so concurrent finalizations get distinct consecutive numbers.
//!
//! Gaplessness is a contract between the sequence and its caller: a number is
//! taken only after every check that could fail has passed (see
//! `Invoice::finalize`), so a taken number is always used. A persistent
//! sequence (when the storage engine lands) must commit the counter and the
//! finalized invoice in the same atomic batch for the same reason.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Longest issuer prefix, in bytes.
pub const PREFIX_LENGTH_MAX: usize = 16;

/// Digits the sequence is zero-padded to (numbers past 999,999 grow wider).
pub const SEQUENCE_DIGITS: usize = 6;

/// Errors of invoice numbering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberingError {
    /// The prefix is empty, too long, or not `A-Z`, `0-9` and inner `-`.
    #[error("invalid number prefix {prefix:?}: use 1 to {PREFIX_LENGTH_MAX} of A-Z, 0-9 and '-'")]
    InvalidPrefix {
        /// The rejected prefix.
        prefix: String,
    },
    /// The text is not a number of the form `PREFIX-YYYY-NNNNNN`.
    #[error("{text:?} is not an invoice number like AER-2026-000001")]
    Malformed {
        /// The rejected text.
        text: String,
    },
    /// The sequence of this prefix and year has no numbers left.
    #[error("number sequence {prefix}-{year} is exhausted")]
    Exhausted {
        /// The prefix.
        prefix: String,
        /// The year.
        year: i32,
    },
    /// The time of issue is outside the calendar range.
    #[error("timestamp {unix_ms} ms is outside the supported calendar range")]
    TimestampOutOfRange {
        /// The timestamp.
        unix_ms: i64,
    },
}

/// An issuer's number prefix, e.g. `AER` (invoices) or `AER-CN` (credit notes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvoicePrefix(String);

impl InvoicePrefix {
    /// The default invoice prefix.
    pub const DEFAULT_INVOICES: &'static str = "AER";
    /// The default credit-note prefix.
    pub const DEFAULT_CREDIT_NOTES: &'static str = "AER-CN";

    /// Validates a prefix: 1 to [`PREFIX_LENGTH_MAX`] bytes of `A-Z`, `0-9`
    /// and `-`, not starting or ending with `-`.
    pub fn new(prefix: impl Into<String>) -> Result<InvoicePrefix, NumberingError> {
        let prefix = prefix.into();
        let allowed =
            |byte: &u8| byte.is_ascii_uppercase() || byte.is_ascii_digit() || *byte == b'-';
        let valid = !prefix.is_empty()
            && prefix.len() <= PREFIX_LENGTH_MAX
            && prefix.as_bytes().iter().all(allowed)
            && !prefix.starts_with('-')
            && !prefix.ends_with('-');
        if valid {
            Ok(InvoicePrefix(prefix))
        } else {
            Err(NumberingError::InvalidPrefix { prefix })
        }
    }

    /// `AER`.
    pub fn invoices() -> InvoicePrefix {
        InvoicePrefix(Self::DEFAULT_INVOICES.to_owned())
    }

    /// `AER-CN`.
    pub fn credit_notes() -> InvoicePrefix {
        InvoicePrefix(Self::DEFAULT_CREDIT_NOTES.to_owned())
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InvoicePrefix {
    type Error = NumberingError;
    fn try_from(prefix: String) -> Result<Self, NumberingError> {
        InvoicePrefix::new(prefix)
    }
}

impl From<InvoicePrefix> for String {
    fn from(prefix: InvoicePrefix) -> String {
        prefix.0
    }
}

impl fmt::Display for InvoicePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A finalized document's number: prefix, year, sequence. Displays and
/// serializes as `AER-2026-000001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvoiceNumber {
    prefix: InvoicePrefix,
    year: i32,
    sequence: u64,
}

impl InvoiceNumber {
    /// A number from its parts (the sequence starts at 1).
    pub fn new(prefix: InvoicePrefix, year: i32, sequence: u64) -> InvoiceNumber {
        InvoiceNumber {
            prefix,
            year,
            sequence,
        }
    }

    /// The issuer prefix.
    pub fn prefix(&self) -> &InvoicePrefix {
        &self.prefix
    }

    /// The UTC year of issue.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The position in the year's sequence, from 1.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:04}-{:0width$}",
            self.prefix,
            self.year,
            self.sequence,
            width = SEQUENCE_DIGITS
        )
    }
}

impl FromStr for InvoiceNumber {
    type Err = NumberingError;
    fn from_str(text: &str) -> Result<Self, NumberingError> {
        let malformed = || NumberingError::Malformed {
            text: text.to_owned(),
        };
        let mut parts = text.rsplitn(3, '-');
        let sequence_text = parts.next().ok_or_else(malformed)?;
        let year_text = parts.next().ok_or_else(malformed)?;
        let prefix_text = parts.next().ok_or_else(malformed)?;
        let digits =
            |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
        if year_text.len() != 4
            || !digits(year_text)
            || sequence_text.len() < SEQUENCE_DIGITS
            || !digits(sequence_text)
        {
            return Err(malformed());
        }
        let year = year_text.parse().map_err(|_| malformed())?;
        let sequence: u64 = sequence_text.parse().map_err(|_| malformed())?;
        if sequence == 0 {
            return Err(malformed());
        }
        let prefix = InvoicePrefix::new(prefix_text).map_err(|_| malformed())?;
        Ok(InvoiceNumber::new(prefix, year, sequence))
    }
}

impl TryFrom<String> for InvoiceNumber {
    type Error = NumberingError;
    fn try_from(text: String) -> Result<Self, NumberingError> {
        text.parse()
    }
}

impl From<InvoiceNumber> for String {
    fn from(number: InvoiceNumber) -> String {
        number.to_string()
    }
}

/// The UTC calendar year of a timestamp.
pub fn utc_year(unix_ms: i64) -> Result<i32, NumberingError> {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|time| time.year())
        .filter(|year| (0..=9999).contains(year))
        .ok_or(NumberingError::TimestampOutOfRange { unix_ms })
}

/// Where gapless numbers come from. One counter per (prefix, year); each
/// call returns the next number of that counter, starting at 1.
///
/// Implementations must be safe under concurrent calls: two callers never
/// get the same number, and no number is skipped.
pub trait InvoiceNumberSequence: Send + Sync {
    /// Takes the next number of the `prefix`/`year` series. The caller must
    /// use it (see the module docs on gaplessness).
    fn next_number(
        &self,
        prefix: &InvoicePrefix,
        year: i32,
    ) -> Result<InvoiceNumber, NumberingError>;

    /// The last number taken in the series, if any (does not take one).
    fn last_number(&self, prefix: &InvoicePrefix, year: i32) -> Option<InvoiceNumber>;
}

/// An [`InvoiceNumberSequence`] held in memory (lost on restart; a persistent
/// one comes with the storage engine).
#[derive(Debug, Default)]
pub struct InMemoryInvoiceNumberSequence {
    last_by_series: Mutex<HashMap<(InvoicePrefix, i32), u64>>,
}

impl InMemoryInvoiceNumberSequence {
    /// An empty sequence: every series starts at 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sequence resuming after `last` in its series (e.g. restored state).
    pub fn resume_after(last: &InvoiceNumber) -> Self {
        let sequence = Self::default();
        sequence
            .last_by_series
            .lock()
            .insert((last.prefix.clone(), last.year), last.sequence);
        sequence
    }
}

impl InvoiceNumberSequence for InMemoryInvoiceNumberSequence {
    fn next_number(
        &self,
        prefix: &InvoicePrefix,
        year: i32,
    ) -> Result<InvoiceNumber, NumberingError> {
        let mut last_by_series = self.last_by_series.lock();
        let last = last_by_series.entry((prefix.clone(), year)).or_insert(0);
        let next = last
            .checked_add(1)
            .ok_or_else(|| NumberingError::Exhausted {
                prefix: prefix.to_string(),
                year,
            })?;
        *last = next;
        Ok(InvoiceNumber::new(prefix.clone(), year, next))
    }

    fn last_number(&self, prefix: &InvoicePrefix, year: i32) -> Option<InvoiceNumber> {
        self.last_by_series
            .lock()
            .get(&(prefix.clone(), year))
            .map(|&last| InvoiceNumber::new(prefix.clone(), year, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_display_and_parse_back() {
        let number = InvoiceNumber::new(InvoicePrefix::credit_notes(), 2026, 42);
        assert_eq!(number.to_string(), "AER-CN-2026-000042");
        assert_eq!("AER-CN-2026-000042".parse::<InvoiceNumber>(), Ok(number));
        assert!("AER-26-000001".parse::<InvoiceNumber>().is_err());
        assert!("AER-2026-000000".parse::<InvoiceNumber>().is_err());
        assert!("aer-2026-000001".parse::<InvoiceNumber>().is_err());
    }

    #[test]
    fn each_series_counts_on_its_own() {
        let sequence = InMemoryInvoiceNumberSequence::new();
        let aer = InvoicePrefix::invoices();
        let first = sequence.next_number(&aer, 2026).expect("fresh series");
        let other_year = sequence.next_number(&aer, 2027).expect("fresh series");
        let second = sequence.next_number(&aer, 2026).expect("series continues");
        assert_eq!(
            (first.sequence(), other_year.sequence(), second.sequence()),
            (1, 1, 2)
        );
        assert_eq!(sequence.last_number(&aer, 2026), Some(second));
    }
}
