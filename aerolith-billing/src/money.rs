//! Money: currencies, amounts in integer minor units, and the one rounding rule.
//!
//! An amount that appears on an invoice is a [`Money`]: a signed count of the
//! currency's minor units (cents for USD) and the [`Currency`]. Arithmetic is
//! checked and returns [`MoneyError`] on overflow or on mixing currencies; it
//! never panics and never wraps.
//!
//! Unit prices and intermediate results are [`rust_decimal::Decimal`] values in
//! MAJOR units (dollars), so a price of $0.00001 per API call is exact. A
//! decimal amount becomes money in exactly one place, [`Money::from_decimal`],
//! with exactly one rule:
//!
//! **Rounding rule: banker's rounding (round half to even,
//! [`RoundingStrategy::MidpointNearestEven`]) to the currency's minor unit, once
//! per invoice line.** A line's amount is computed exactly in decimal and rounded
//! once; totals are sums of already-rounded lines and are never rounded again.
//! So $0.125 becomes $0.12, $0.135 becomes $0.14, and -$0.125 becomes -$0.12.
//! Half-even is unbiased over many lines, which is why it is the rule for a
//! ledger. Binary floating point is not used anywhere in this crate
//! (a test scans the sources for the float types).

use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// The rounding strategy of the crate's one rounding rule (see the module docs).
pub const ROUNDING_STRATEGY: RoundingStrategy = RoundingStrategy::MidpointNearestEven;

/// Largest minor-unit exponent a [`Currency`] may have (10^18 minor units per
/// major unit still fits an `i64` amount of 9 major units; more is useless).
pub const MINOR_UNIT_EXPONENT_MAX: u8 = 18;

/// Errors of money arithmetic and conversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The two operands are in different currencies.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in an `i64` count of minor units.
    #[error("money overflow in {operation}")]
    Overflow {
        /// Which operation overflowed.
        operation: MoneyOperation,
    },
    /// A decimal amount is too large to be represented as money.
    #[error("amount {amount} {currency} is out of range for money")]
    OutOfRange {
        /// The decimal amount (major units) that does not fit.
        amount: Decimal,
        /// The currency it was converted into.
        currency: Currency,
    },
    /// The currency code is not three ASCII uppercase letters.
    #[error("invalid currency code {code:?}: expected three uppercase ASCII letters")]
    InvalidCurrencyCode {
        /// The rejected code.
        code: String,
    },
    /// The currency code is well formed but not in the built-in table, so its
    /// minor-unit exponent is unknown (use [`Currency::with_exponent`]).
    #[error("unknown currency {code:?}: its minor-unit exponent is not known")]
    UnknownCurrency {
        /// The unknown code.
        code: String,
    },
    /// The minor-unit exponent is above [`MINOR_UNIT_EXPONENT_MAX`].
    #[error("minor-unit exponent {exponent} is above the maximum {MINOR_UNIT_EXPONENT_MAX}")]
    ExponentTooLarge {
        /// The rejected exponent.
        exponent: u8,
    },
}

/// The arithmetic operation named by [`MoneyError::Overflow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MoneyOperation {
    /// Addition.
    Add,
    /// Subtraction.
    Sub,
    /// Negation.
    Neg,
    /// Multiplication by an integer.
    Mul,
    /// Sum of many amounts.
    Sum,
}

impl fmt::Display for MoneyOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MoneyOperation::Add => "addition",
            MoneyOperation::Sub => "subtraction",
            MoneyOperation::Neg => "negation",
            MoneyOperation::Mul => "multiplication",
            MoneyOperation::Sum => "sum",
        };
        f.write_str(name)
    }
}

/// ISO 4217 codes this crate knows, with their minor-unit exponents and
/// display symbols. Other codes need [`Currency::with_exponent`].
const KNOWN_CURRENCIES: &[(&str, u8, Option<&str>)] = &[
    ("USD", 2, Some("$")),
    ("EUR", 2, Some("€")),
    ("GBP", 2, Some("£")),
    ("JPY", 0, Some("¥")),
    ("CHF", 2, None),
    ("CAD", 2, None),
    ("AUD", 2, None),
    ("NZD", 2, None),
    ("CNY", 2, None),
    ("HKD", 2, None),
    ("SGD", 2, None),
    ("INR", 2, None),
    ("BRL", 2, None),
    ("MXN", 2, None),
    ("SEK", 2, None),
    ("NOK", 2, None),
    ("DKK", 2, None),
    ("PLN", 2, None),
    ("CZK", 2, None),
    ("ZAR", 2, None),
    ("KRW", 0, None),
    ("CLP", 0, None),
    ("ISK", 0, None),
    ("VND", 0, None),
    ("BHD", 3, None),
    ("KWD", 3, None),
    ("OMR", 3, None),
    ("JOD", 3, None),
    ("TND", 3, None),
];

/// A currency: an ISO 4217 code and the exponent of its minor unit
/// (USD = 2: one dollar is 100 cents; JPY = 0).
///
/// Serialized as its three-letter code; deserialization accepts the codes of
/// the built-in table only, so the exponent can never be guessed wrong.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// US dollar, exponent 2: the default currency.
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };
    /// Euro, exponent 2.
    pub const EUR: Currency = Currency {
        code: *b"EUR",
        exponent: 2,
    };
    /// Japanese yen, exponent 0.
    pub const JPY: Currency = Currency {
        code: *b"JPY",
        exponent: 0,
    };

    /// Looks a code up in the built-in ISO 4217 table.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        let bytes = parse_code(code)?;
        KNOWN_CURRENCIES
            .iter()
            .find(|(known, _, _)| known.as_bytes() == bytes)
            .map(|&(_, exponent, _)| Currency {
                code: bytes,
                exponent,
            })
            .ok_or_else(|| MoneyError::UnknownCurrency {
                code: code.to_owned(),
            })
    }

    /// A currency outside the built-in table, with an explicit exponent.
    /// Such a currency does not round-trip through serde (which only knows
    /// the table); it is for computation.
    pub fn with_exponent(code: &str, exponent: u8) -> Result<Currency, MoneyError> {
        if exponent > MINOR_UNIT_EXPONENT_MAX {
            return Err(MoneyError::ExponentTooLarge { exponent });
        }
        Ok(Currency {
            code: parse_code(code)?,
            exponent,
        })
    }

    /// The three-letter code, e.g. `"USD"`.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("codes are validated as ASCII letters")
    }

    /// The minor-unit exponent: 2 means 100 minor units per major unit.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// The display symbol when the currency has a well-known one (`$`).
    pub fn symbol(&self) -> Option<&'static str> {
        KNOWN_CURRENCIES
            .iter()
            .find(|(known, _, _)| known.as_bytes() == self.code)
            .and_then(|&(_, _, symbol)| symbol)
    }

    /// Formats a decimal amount in major units with this currency's symbol:
    /// at least the currency's decimals, more when the value has them (so a
    /// unit price of 0.00001 shows as `$0.00001`), thousands separated.
    pub fn format_decimal(&self, amount: Decimal) -> String {
        let negative = amount.is_sign_negative() && !amount.is_zero();
        let mut magnitude = amount.abs().normalize();
        if magnitude.scale() < u32::from(self.exponent) {
            magnitude.rescale(u32::from(self.exponent));
        }
        let text = magnitude.to_string();
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text.as_str(), None),
        };
        let mut body = group_thousands(integer);
        if let Some(fraction) = fraction {
            body.push('.');
            body.push_str(fraction);
        }
        let sign = if negative { "-" } else { "" };
        match self.symbol() {
            Some(symbol) => format!("{sign}{symbol}{body}"),
            None => format!("{sign}{} {body}", self.code()),
        }
    }
}

/// Inserts a comma every three digits of an unsigned integer string.
fn group_thousands(digits: &str) -> String {
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn parse_code(code: &str) -> Result<[u8; 3], MoneyError> {
    let bytes = code.as_bytes();
    if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
        return Err(MoneyError::InvalidCurrencyCode {
            code: code.to_owned(),
        });
    }
    Ok([bytes[0], bytes[1], bytes[2]])
}

impl Default for Currency {
    fn default() -> Self {
        Currency::USD
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(exp {})", self.code(), self.exponent)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Currency::from_code(code)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: a signed count of minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Signed amount in minor units (cents for USD).
    pub amount_minor: i64,
    /// The currency the amount is in.
    pub currency: Currency,
}

impl Money {
    /// An amount in minor units.
    pub const fn new(amount_minor: i64, currency: Currency) -> Money {
        Money {
            amount_minor,
            currency,
        }
    }

    /// Zero in the given currency.
    pub const fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// Converts an exact decimal amount in MAJOR units to money with the
    /// crate's one rounding rule: half-even to the minor unit.
    pub fn from_decimal(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let out_of_range = || MoneyError::OutOfRange { amount, currency };
        let rounded = round_half_even(amount, currency);
        let scale = Decimal::from(10_i64.pow(u32::from(currency.exponent)));
        let minor = rounded.checked_mul(scale).ok_or_else(out_of_range)?;
        let amount_minor = minor.to_i64().ok_or_else(out_of_range)?;
        Ok(Money::new(amount_minor, currency))
    }

    /// The amount in major units, exactly (e.g. 1234 cents -> 12.34).
    pub fn to_decimal(&self) -> Decimal {
        Decimal::from_i128_with_scale(
            i128::from(self.amount_minor),
            u32::from(self.currency.exponent),
        )
    }

    /// True when the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount_minor == 0
    }

    /// True when the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount_minor < 0
    }

    /// True when the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.amount_minor > 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `self + other`, checked.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let amount_minor =
            self.amount_minor
                .checked_add(other.amount_minor)
                .ok_or(MoneyError::Overflow {
                    operation: MoneyOperation::Add,
                })?;
        Ok(Money::new(amount_minor, self.currency))
    }

    /// `self - other`, checked.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let amount_minor =
            self.amount_minor
                .checked_sub(other.amount_minor)
                .ok_or(MoneyError::Overflow {
                    operation: MoneyOperation::Sub,
                })?;
        Ok(Money::new(amount_minor, self.currency))
    }

    /// `-self`, checked (`i64::MIN` has no negation).
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        let amount_minor = self
            .amount_minor
            .checked_neg()
            .ok_or(MoneyError::Overflow {
                operation: MoneyOperation::Neg,
            })?;
        Ok(Money::new(amount_minor, self.currency))
    }

    /// `self * factor`, checked.
    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let amount_minor = self
            .amount_minor
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow {
                operation: MoneyOperation::Mul,
            })?;
        Ok(Money::new(amount_minor, self.currency))
    }

    /// Sums amounts that must all be in `currency` (an empty sum is zero).
    pub fn checked_sum<I>(currency: Currency, amounts: I) -> Result<Money, MoneyError>
    where
        I: IntoIterator<Item = Money>,
    {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), |total, amount| {
                total.checked_add(amount).map_err(|error| match error {
                    MoneyError::Overflow { .. } => MoneyError::Overflow {
                        operation: MoneyOperation::Sum,
                    },
                    other => other,
                })
            })
    }

    /// The smaller of two amounts of the same currency.
    pub fn checked_min(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(if self.amount_minor <= other.amount_minor {
            self
        } else {
            other
        })
    }

    /// The larger of two amounts of the same currency.
    pub fn checked_max(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(if self.amount_minor >= other.amount_minor {
            self
        } else {
            other
        })
    }
}

/// Rounds a decimal amount in major units to the currency's minor unit with
/// the crate's one rule, half-even. Exposed so that previews and tests can
/// state the rule; [`Money::from_decimal`] is the only caller that matters.
pub fn round_half_even(amount: Decimal, currency: Currency) -> Decimal {
    amount.round_dp_with_strategy(u32::from(currency.exponent), ROUNDING_STRATEGY)
}

impl fmt::Display for Money {
    /// `$12.34`, `-$0.05`, `$1,234.00`; currencies without a symbol show the
    /// code: `CHF 12.34`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.currency.format_decimal(self.to_decimal()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn display_uses_symbol_sign_and_grouping() {
        assert_eq!(Money::new(1234, Currency::USD).to_string(), "$12.34");
        assert_eq!(Money::new(-5, Currency::USD).to_string(), "-$0.05");
        assert_eq!(Money::new(0, Currency::USD).to_string(), "$0.00");
        assert_eq!(
            Money::new(123_456_789, Currency::USD).to_string(),
            "$1,234,567.89"
        );
        assert_eq!(Money::new(1500, Currency::JPY).to_string(), "¥1,500");
        let chf = Currency::from_code("CHF").expect("CHF is in the table");
        assert_eq!(Money::new(1234, chf).to_string(), "CHF 12.34");
    }

    #[test]
    fn sub_cent_decimals_are_shown_in_full() {
        assert_eq!(Currency::USD.format_decimal(dec!(0.00001)), "$0.00001");
        assert_eq!(Currency::USD.format_decimal(dec!(29)), "$29.00");
        assert_eq!(Currency::USD.format_decimal(dec!(-0.5)), "-$0.50");
    }

    #[test]
    fn to_decimal_is_exact() {
        assert_eq!(Money::new(-1234, Currency::USD).to_decimal(), dec!(-12.34));
        assert_eq!(Money::new(7, Currency::JPY).to_decimal(), dec!(7));
    }
}
