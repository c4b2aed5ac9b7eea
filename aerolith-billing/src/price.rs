//! Price models: how a quantity of a metric becomes an exact decimal amount.
//!
//! A [`PriceModel`] turns a quantity into an exact [`Decimal`] amount in major
//! units; nothing is rounded here (rounding to money happens once per invoice
//! line, see [`crate::money`]). Five models:
//!
//! - `Flat`: a fixed amount whatever the quantity.
//! - `PerUnit`: quantity × unit price.
//! - `Package`: whole packages of `package_size` units, rounded up, × package price.
//! - `Graduated`: each tier charges the units that fall inside it (like income tax brackets).
//! - `Volume`: every unit is charged at the rate of the tier the total falls in.
//!
//! Tiers are ascending by `up_to` (inclusive upper bound); the last tier is
//! unbounded (`up_to = None`). A tier's optional `flat_fee` is charged once
//! when at least one unit falls into it (graduated) or when the total falls
//! into it (volume). A zero quantity costs zero in every model except `Flat`.
//! [`PriceModel::breakdown`] returns the components an amount is made of, so
//! every amount on an invoice can be explained.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest number of tiers a tiered price may have; a real price list has a
/// handful, and the bound keeps validation and pricing loops small.
pub const PRICE_TIERS_MAX: usize = 64;

/// Errors of price validation and pricing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// A price, fee or amount is below zero.
    #[error("{field} is negative: {value}")]
    NegativePrice {
        /// Which field (`unit_price`, `flat_fee`, `amount`, `package_price`).
        field: &'static str,
        /// The rejected value.
        value: Decimal,
    },
    /// A package price has a package size of zero.
    #[error("package_size must be at least 1")]
    ZeroPackageSize,
    /// A tiered price has no tiers.
    #[error("a tiered price needs at least one tier")]
    NoTiers,
    /// A tiered price has more than [`PRICE_TIERS_MAX`] tiers.
    #[error("{count} tiers is more than the maximum {PRICE_TIERS_MAX}")]
    TooManyTiers {
        /// How many tiers were given.
        count: usize,
    },
    /// A tier's `up_to` is not strictly above the previous tier's (or is 0).
    #[error("tier {index}: up_to {up_to} is not above the previous bound {previous_up_to}")]
    TiersNotAscending {
        /// Index of the offending tier.
        index: usize,
        /// Its `up_to`.
        up_to: u64,
        /// The previous tier's `up_to` (0 for the first tier).
        previous_up_to: u64,
    },
    /// A tier other than the last is unbounded.
    #[error("tier {index} is unbounded but is not the last tier")]
    UnboundedTierNotLast {
        /// Index of the unbounded tier.
        index: usize,
    },
    /// The last tier has an upper bound, so large quantities have no price.
    #[error("the last tier must be unbounded (up_to absent), found up_to {up_to}")]
    LastTierBounded {
        /// The last tier's bound.
        up_to: u64,
    },
    /// The quantity to price is negative.
    #[error("quantity {quantity} is negative")]
    NegativeQuantity {
        /// The rejected quantity.
        quantity: Decimal,
    },
    /// The amount does not fit in a decimal.
    #[error("price computation overflowed for quantity {quantity}")]
    Overflow {
        /// The quantity being priced.
        quantity: Decimal,
    },
}

/// One tier of a graduated or volume price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// Inclusive upper bound of the tier in units; `None` means no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
    /// Price per unit in major units.
    #[serde(with = "decimal_text")]
    pub unit_price: Decimal,
    /// Fixed fee charged once when the tier is reached, in major units.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_text::option"
    )]
    pub flat_fee: Option<Decimal>,
}

impl PriceTier {
    /// A tier up to `up_to` units (inclusive) at `unit_price`.
    pub fn up_to(up_to: u64, unit_price: Decimal) -> PriceTier {
        PriceTier {
            up_to: Some(up_to),
            unit_price,
            flat_fee: None,
        }
    }

    /// An unbounded (last) tier at `unit_price`.
    pub fn unbounded(unit_price: Decimal) -> PriceTier {
        PriceTier {
            up_to: None,
            unit_price,
            flat_fee: None,
        }
    }

    /// The same tier with a flat fee.
    pub fn with_flat_fee(mut self, flat_fee: Decimal) -> PriceTier {
        self.flat_fee = Some(flat_fee);
        self
    }
}

/// How a quantity is priced. Serialized with a `model` tag:
/// `{ model = "per_unit", unit_price = "0.00001" }`. Decimal values are
/// written as strings (or integers) in files; floats are refused because they
/// cannot hold prices exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriceModel {
    /// A fixed amount whatever the quantity.
    Flat {
        /// The amount, in major units.
        #[serde(with = "decimal_text")]
        amount: Decimal,
    },
    /// Quantity × unit price.
    PerUnit {
        /// Price per unit, in major units (may be sub-cent).
        #[serde(with = "decimal_text")]
        unit_price: Decimal,
    },
    /// Whole packages of `package_size` units, rounded up, × `package_price`.
    Package {
        /// Units per package (at least 1).
        package_size: u64,
        /// Price per package, in major units.
        #[serde(with = "decimal_text")]
        package_price: Decimal,
    },
    /// Each tier charges the units that fall inside it.
    Graduated {
        /// Ascending tiers; the last is unbounded.
        tiers: Vec<PriceTier>,
    },
    /// All units are charged at the rate of the tier the total falls in.
    Volume {
        /// Ascending tiers; the last is unbounded.
        tiers: Vec<PriceTier>,
    },
}

/// One part of a priced amount: `quantity × unit_price + flat_fee = amount`,
/// all exact, in major units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceComponent {
    /// The tier this component comes from (tiered models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_index: Option<usize>,
    /// Quantity charged at `unit_price` (packages for the package model).
    pub quantity: Decimal,
    /// Price per unit of `quantity`.
    pub unit_price: Decimal,
    /// Fixed fee of this component (zero when none).
    pub flat_fee: Decimal,
    /// `quantity × unit_price + flat_fee`, exact.
    pub amount: Decimal,
}

impl PriceModel {
    /// Checks the model: no negative prices, package size at least 1, tiers
    /// ascending with only the last unbounded, at most [`PRICE_TIERS_MAX`].
    pub fn validate(&self) -> Result<(), PriceError> {
        match self {
            PriceModel::Flat { amount } => non_negative("amount", *amount),
            PriceModel::PerUnit { unit_price } => non_negative("unit_price", *unit_price),
            PriceModel::Package {
                package_size,
                package_price,
            } => {
                if *package_size == 0 {
                    return Err(PriceError::ZeroPackageSize);
                }
                non_negative("package_price", *package_price)
            }
            PriceModel::Graduated { tiers } | PriceModel::Volume { tiers } => validate_tiers(tiers),
        }
    }

    /// The exact amount (major units) for `quantity`. Validates first, so an
    /// invalid model never prices anything.
    pub fn price(&self, quantity: Decimal) -> Result<Decimal, PriceError> {
        let components = self.breakdown(quantity)?;
        components
            .iter()
            .try_fold(Decimal::ZERO, |total, component| {
                total.checked_add(component.amount)
            })
            .ok_or(PriceError::Overflow { quantity })
    }

    /// Like [`PriceModel::price`] for a whole number of units.
    pub fn price_units(&self, quantity: u64) -> Result<Decimal, PriceError> {
        self.price(Decimal::from(quantity))
    }

    /// The components `quantity` is charged as; their amounts sum to
    /// [`PriceModel::price`]. Components with zero quantity and no fee are
    /// left out, so a zero quantity gives no components (except `Flat`).
    pub fn breakdown(&self, quantity: Decimal) -> Result<Vec<PriceComponent>, PriceError> {
        self.validate()?;
        if quantity.is_sign_negative() && !quantity.is_zero() {
            return Err(PriceError::NegativeQuantity { quantity });
        }
        let overflow = PriceError::Overflow { quantity };
        match self {
            PriceModel::Flat { amount } => Ok(vec![PriceComponent {
                tier_index: None,
                quantity: Decimal::ONE,
                unit_price: *amount,
                flat_fee: Decimal::ZERO,
                amount: *amount,
            }]),
            PriceModel::PerUnit { unit_price } => {
                if quantity.is_zero() {
                    return Ok(Vec::new());
                }
                let amount = quantity.checked_mul(*unit_price).ok_or(overflow)?;
                Ok(vec![component(
                    None,
                    quantity,
                    *unit_price,
                    Decimal::ZERO,
                    amount,
                )])
            }
            PriceModel::Package {
                package_size,
                package_price,
            } => {
                if quantity.is_zero() {
                    return Ok(Vec::new());
                }
                let packages = quantity
                    .checked_div(Decimal::from(*package_size))
                    .ok_or(overflow.clone())?
                    .ceil();
                let amount = packages.checked_mul(*package_price).ok_or(overflow)?;
                Ok(vec![component(
                    None,
                    packages,
                    *package_price,
                    Decimal::ZERO,
                    amount,
                )])
            }
            PriceModel::Graduated { tiers } => graduated(tiers, quantity),
            PriceModel::Volume { tiers } => volume(tiers, quantity),
        }
    }
}

fn component(
    tier_index: Option<usize>,
    quantity: Decimal,
    unit_price: Decimal,
    flat_fee: Decimal,
    amount: Decimal,
) -> PriceComponent {
    PriceComponent {
        tier_index,
        quantity,
        unit_price,
        flat_fee,
        amount,
    }
}

fn non_negative(field: &'static str, value: Decimal) -> Result<(), PriceError> {
    if value.is_sign_negative() && !value.is_zero() {
        Err(PriceError::NegativePrice { field, value })
    } else {
        Ok(())
    }
}

fn validate_tiers(tiers: &[PriceTier]) -> Result<(), PriceError> {
    if tiers.is_empty() {
        return Err(PriceError::NoTiers);
    }
    if tiers.len() > PRICE_TIERS_MAX {
        return Err(PriceError::TooManyTiers { count: tiers.len() });
    }
    let last_index = tiers.len() - 1;
    let mut previous_up_to = 0_u64;
    for (index, tier) in tiers.iter().enumerate() {
        non_negative("unit_price", tier.unit_price)?;
        if let Some(fee) = tier.flat_fee {
            non_negative("flat_fee", fee)?;
        }
        match tier.up_to {
            None if index != last_index => return Err(PriceError::UnboundedTierNotLast { index }),
            None => {}
            Some(up_to) if index == last_index => {
                return Err(PriceError::LastTierBounded { up_to })
            }
            Some(up_to) if up_to <= previous_up_to => {
                return Err(PriceError::TiersNotAscending {
                    index,
                    up_to,
                    previous_up_to,
                })
            }
            Some(up_to) => previous_up_to = up_to,
        }
    }
    Ok(())
}

fn graduated(tiers: &[PriceTier], quantity: Decimal) -> Result<Vec<PriceComponent>, PriceError> {
    let overflow = || PriceError::Overflow { quantity };
    let mut components = Vec::new();
    let mut lower = Decimal::ZERO;
    for (index, tier) in tiers.iter().enumerate() {
        if quantity <= lower {
            break;
        }
        let upper = tier.up_to.map(Decimal::from);
        let top = match upper {
            Some(upper) if upper < quantity => upper,
            _ => quantity,
        };
        let units = top - lower;
        let flat_fee = tier.flat_fee.unwrap_or(Decimal::ZERO);
        let amount = units
            .checked_mul(tier.unit_price)
            .and_then(|charge| charge.checked_add(flat_fee))
            .ok_or_else(overflow)?;
        components.push(component(
            Some(index),
            units,
            tier.unit_price,
            flat_fee,
            amount,
        ));
        match upper {
            Some(upper) => lower = upper,
            None => break,
        }
    }
    Ok(components)
}

fn volume(tiers: &[PriceTier], quantity: Decimal) -> Result<Vec<PriceComponent>, PriceError> {
    if quantity.is_zero() {
        return Ok(Vec::new());
    }
    let (index, tier) = tiers
        .iter()
        .enumerate()
        .find(|(_, tier)| {
            tier.up_to
                .is_none_or(|up_to| quantity <= Decimal::from(up_to))
        })
        .expect("validated tiers end with an unbounded tier");
    let flat_fee = tier.flat_fee.unwrap_or(Decimal::ZERO);
    let amount = quantity
        .checked_mul(tier.unit_price)
        .and_then(|charge| charge.checked_add(flat_fee))
        .ok_or(PriceError::Overflow { quantity })?;
    Ok(vec![component(
        Some(index),
        quantity,
        tier.unit_price,
        flat_fee,
        amount,
    )])
}

/// Serde for decimals in configuration files: strings (`"0.25"`) or integers
/// (`29`), never floats, which cannot hold prices exactly. Serializes as a
/// string.
pub(crate) mod decimal_text {
    use std::fmt;

    use rust_decimal::Decimal;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    struct DecimalTextVisitor;

    impl Visitor<'_> for DecimalTextVisitor {
        type Value = Decimal;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal written as a string (\"0.25\") or an integer")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Decimal, E> {
            Decimal::from_str_exact(text.trim())
                .map_err(|error| E::custom(format_args!("invalid decimal {text:?}: {error}")))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Decimal, E> {
            Ok(Decimal::from(value))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal, E> {
            Ok(Decimal::from(value))
        }
    }

    pub(crate) fn serialize<S: Serializer>(
        value: &Decimal,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Decimal, D::Error> {
        deserializer.deserialize_any(DecimalTextVisitor)
    }

    /// The same for `Option<Decimal>` (absent or a decimal).
    pub(crate) mod option {
        use rust_decimal::Decimal;
        use serde::{Deserialize, Deserializer, Serializer};

        #[derive(Deserialize)]
        #[serde(transparent)]
        struct Text(#[serde(with = "super")] Decimal);

        pub(crate) fn serialize<S: Serializer>(
            value: &Option<Decimal>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => serializer.collect_str(value),
                None => serializer.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Decimal>, D::Error> {
            Ok(Option::<Text>::deserialize(deserializer)?.map(|Text(value)| value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn graduated_breakdown_lists_each_tier_used() {
        let model = PriceModel::Graduated {
            tiers: vec![
                PriceTier::up_to(10, dec!(1)),
                PriceTier::unbounded(dec!(0.5)).with_flat_fee(dec!(2)),
            ],
        };
        let parts = model.breakdown(dec!(14)).expect("valid model");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].amount, dec!(10));
        assert_eq!(parts[1].quantity, dec!(4));
        assert_eq!(parts[1].amount, dec!(4));
        assert_eq!(model.price(dec!(14)), Ok(dec!(14)));
    }
}
