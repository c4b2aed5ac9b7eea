//! Invoice lines: what each line is for, and the constructors that make
//! charge lines from a plan, metered usage, proration and adjustments.
//!
//! Every line keeps the quantity and unit price (or the price components)
//! its amount came from; the amount is rounded once, half-even.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{render, CouponId, InvoiceError, InvoicePeriod};
use crate::catalog::{BillingInterval, IncludedQuantity, MetricId, Plan};
use crate::money::{Currency, Money};
use crate::price::{PriceComponent, PriceModel};

/// What a line is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InvoiceLineKind {
    /// The plan's recurring fee.
    BaseFee,
    /// Usage beyond the included quantity of a metric.
    Overage {
        /// The metric.
        metric: MetricId,
        /// Usage in the period.
        used: Decimal,
        /// The plan's included quantity.
        included: IncludedQuantity,
    },
    /// A proration charge or credit from a plan change.
    Proration,
    /// A coupon discount (computed).
    Discount {
        /// The coupon.
        coupon: CouponId,
        /// The percentage, for percent coupons.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<Decimal>,
    },
    /// Account credit applied (computed).
    Credit,
    /// Tax (computed).
    Tax {
        /// The rate, in percent.
        rate_percent: Decimal,
    },
    /// A manual charge or credit.
    Adjustment,
}

impl InvoiceLineKind {
    /// A short name of the kind (`"base_fee"`, `"overage"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            InvoiceLineKind::BaseFee => "base_fee",
            InvoiceLineKind::Overage { .. } => "overage",
            InvoiceLineKind::Proration => "proration",
            InvoiceLineKind::Discount { .. } => "discount",
            InvoiceLineKind::Credit => "credit",
            InvoiceLineKind::Tax { .. } => "tax",
            InvoiceLineKind::Adjustment => "adjustment",
        }
    }

    /// True for discount, tax and credit lines, which the invoice computes.
    pub fn is_computed(&self) -> bool {
        matches!(
            self,
            InvoiceLineKind::Discount { .. }
                | InvoiceLineKind::Credit
                | InvoiceLineKind::Tax { .. }
        )
    }
}

/// One line of an invoice. `amount` is `quantity × unit_price` (or the sum
/// of `pricing`) rounded half-even to the currency's minor unit. For tax and
/// percent-discount lines `quantity` is the base amount in major units and
/// `unit_price` the rate as a fraction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// What the line is for.
    pub kind: InvoiceLineKind,
    /// Human description.
    pub description: String,
    /// Quantity the amount came from.
    pub quantity: Decimal,
    /// Price per unit of quantity, when one price explains the amount.
    pub unit_price: Option<Decimal>,
    /// The line's amount (negative for discounts and credits).
    pub amount: Money,
    /// The span the line covers, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<InvoicePeriod>,
    /// The price components of a tiered or packaged amount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing: Vec<PriceComponent>,
    /// For usage lines: the raw usage-ledger quantities the billed quantity
    /// was computed from (see `metering::billable`), so that
    /// `amount = price(quantity)` can be recomputed from the ledger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<UsageSource>,
}

/// One raw usage-ledger quantity behind a usage line (e.g.
/// `api_calls.read = 120000`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSource {
    /// The ledger metric, e.g. `api_calls.read` or `storage_byte_seconds`.
    pub ledger_metric: String,
    /// Its total over the line's period, in the ledger metric's unit.
    pub quantity: u64,
}

impl InvoiceLine {
    /// The plan's base fee for an interval, quantity 1.
    pub fn base_fee(
        plan: &Plan,
        interval: BillingInterval,
        currency: Currency,
        period: Option<InvoicePeriod>,
    ) -> Result<InvoiceLine, InvoiceError> {
        let price = plan
            .base_price_for(interval)
            .ok_or_else(|| InvoiceError::NoBasePrice {
                plan: plan.id.clone(),
                interval,
            })?;
        Ok(InvoiceLine {
            kind: InvoiceLineKind::BaseFee,
            description: format!("{} plan ({interval})", plan.name),
            quantity: Decimal::ONE,
            unit_price: Some(price),
            amount: Money::from_decimal(price, currency)?,
            period,
            pricing: Vec::new(),
            sources: Vec::new(),
        })
    }

    /// The overage line of a metric: `max(0, used − included)` priced by
    /// `price`, or `None` when there is no overage. `label` names the metric
    /// in the description (e.g. `"API calls"`).
    pub fn overage(
        metric: &MetricId,
        label: &str,
        used: Decimal,
        included: IncludedQuantity,
        price: &PriceModel,
        currency: Currency,
    ) -> Result<Option<InvoiceLine>, InvoiceError> {
        if used.is_sign_negative() && !used.is_zero() {
            return Err(InvoiceError::NegativeUsage {
                metric: metric.clone(),
                used,
            });
        }
        let overage = included.overage(used);
        if overage.is_zero() {
            return Ok(None);
        }
        let price_error = |source| InvoiceError::Price {
            metric: metric.clone(),
            source,
        };
        let pricing = price.breakdown(overage).map_err(price_error)?;
        let exact = price.price(overage).map_err(price_error)?;
        let unit_price = match pricing.as_slice() {
            [only] if only.quantity == overage && only.flat_fee.is_zero() => Some(only.unit_price),
            _ => None,
        };
        let description = format!(
            "{label} overage: {} used, {} included",
            render::format_quantity(used),
            render::format_included(included),
        );
        Ok(Some(InvoiceLine {
            kind: InvoiceLineKind::Overage {
                metric: metric.clone(),
                used,
                included,
            },
            description,
            quantity: overage,
            unit_price,
            amount: Money::from_decimal(exact, currency)?,
            period: None,
            pricing: if unit_price.is_some() {
                Vec::new()
            } else {
                pricing
            },
            sources: Vec::new(),
        }))
    }

    /// A proration charge (positive) or credit (negative), quantity 1.
    pub fn proration(
        description: impl Into<String>,
        amount: Money,
        period: Option<InvoicePeriod>,
    ) -> InvoiceLine {
        InvoiceLine::single(
            InvoiceLineKind::Proration,
            description.into(),
            amount,
            period,
        )
    }

    /// A manual charge (positive) or credit (negative), quantity 1.
    pub fn adjustment(description: impl Into<String>, amount: Money) -> InvoiceLine {
        InvoiceLine::single(
            InvoiceLineKind::Adjustment,
            description.into(),
            amount,
            None,
        )
    }

    pub(super) fn single(
        kind: InvoiceLineKind,
        description: String,
        amount: Money,
        period: Option<InvoicePeriod>,
    ) -> InvoiceLine {
        InvoiceLine {
            kind,
            description,
            quantity: Decimal::ONE,
            unit_price: Some(amount.to_decimal()),
            amount,
            period,
            pricing: Vec::new(),
            sources: Vec::new(),
        }
    }
}
