//! Invoices: lines, totals, and the draft -> finalized -> paid / void lifecycle.
//!
//! An [`Invoice`] starts as a draft, built by an [`InvoiceBuilder`] from a
//! plan's base fee, metered usage (overage = `max(0, used - included)` priced
//! by the plan's [`PriceModel`]), proration and adjustment amounts, coupons, a
//! tax rate and the tenant's account credit. Its lines come in two groups:
//!
//! - charge lines, given as inputs: base fee, overage, proration, adjustment;
//! - computed lines, derived from the charges on every edit: discounts
//!   (coupons, on the subtotal, never more than it), tax (rate × (subtotal −
//!   discounts), half-even), and account credit (applied after tax, up to the
//!   amount due).
//!
//! Every line keeps the quantity and unit price (or price components) it
//! came from, and its amount is rounded once, half-even (see [`crate::money`]).
//! Totals are sums of lines:
//! `total = subtotal − discount_total + tax_total − credit_applied = Σ lines`.
//!
//! Lifecycle: a draft is editable. [`Invoice::finalize`] checks the totals
//! invariant, takes a gapless number from an [`InvoiceNumberSequence`] and
//! freezes the invoice: from then on every edit returns
//! [`InvoiceError::Immutable`]. A finalized invoice is then paid
//! ([`Invoice::pay`]) or voided ([`Invoice::void`], only while unpaid).
//! Corrections after finalization are [`CreditNote`]s, never edits.
//! An [`InvoiceStore`] keeps invoices and credit notes and makes each state
//! change atomic with its storage.
//!
//! Not handled here: a negative subtotal (for example a downgrade credit
//! larger than the charges) gets no discount, no tax and no credit, and
//! `amount_due` is zero; turning the negative total into account credit is
//! the caller's job.
//!
//! ```
//! use aerolith_billing::{
//!     BillingInterval, Catalog, InMemoryInvoiceNumberSequence, InvoiceBuilder, InvoiceId,
//!     InvoicePeriod, InvoicePrefix, MetricId, Money,
//! };
//! use aerolith_core::ManualClock;
//! use rust_decimal::Decimal;
//!
//! let catalog = Catalog::default_catalog();
//! let starter = catalog.plan("starter").expect("the default catalog has starter");
//! // November 2026, UTC.
//! let period = InvoicePeriod::new(1_793_491_200_000, 1_796_083_200_000)?;
//! let mut invoice = InvoiceBuilder::new(InvoiceId("inv_1".into()), "acme", catalog.currency, period)
//!     .metric_names(&catalog)
//!     .base_fee(starter, BillingInterval::Monthly)
//!     .usage(starter, MetricId::api_calls(), Decimal::from(250_000))
//!     .build()?;
//! // $29 base fee + 150,000 calls over the allowance at $0.00001.
//! assert_eq!(invoice.total(), Money::new(30_50, catalog.currency));
//!
//! let numbers = InMemoryInvoiceNumberSequence::new();
//! let clock = ManualClock::new(1_796_083_200_000);
//! let number = invoice.finalize(&numbers, &InvoicePrefix::invoices(), &clock)?;
//! assert_eq!(number.to_string(), "AER-2026-000001");
//! # Ok::<(), aerolith_billing::InvoiceError>(())
//! ```

mod builder;
mod coupon;
mod credit_note;
mod numbering;
mod render;
mod store;

use aerolith_core::Clock;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use builder::InvoiceBuilder;
pub use coupon::{Coupon, CouponDuration, CouponId, CouponKind, CouponRedemption};
pub use credit_note::{
    CreditNote, CreditNoteError, CreditNoteLine, CreditNoteReason, CreditNoteRequest,
};
pub use numbering::{
    utc_year, InMemoryInvoiceNumberSequence, InvoiceNumber, InvoiceNumberSequence, InvoicePrefix,
    NumberingError, PREFIX_LENGTH_MAX, SEQUENCE_DIGITS,
};
pub use render::TEXT_WIDTH;
pub use store::{
    InMemoryInvoiceStore, InvoiceStore, InvoiceStoreError, IssueCreditNote, IN_MEMORY_INVOICES_MAX,
};

use crate::catalog::{BillingInterval, IncludedQuantity, MetricId, Plan, PlanId};
use crate::money::{Currency, Money, MoneyError};
use crate::price::{PriceComponent, PriceError, PriceModel};

/// Most lines an invoice may have.
pub const INVOICE_LINES_MAX: usize = 1_000;

/// Most coupons one invoice may carry.
pub const INVOICE_COUPONS_MAX: usize = 16;

/// Longest free text (description, payment reference, void reason), in bytes.
pub const INVOICE_TEXT_BYTES_MAX: usize = 1_024;

/// Errors of building, editing and moving an invoice through its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvoiceError {
    /// The invoice is not a draft, so it cannot be edited or finalized again.
    #[error("invoice {id} is {status} and cannot be changed")]
    Immutable {
        /// The invoice.
        id: InvoiceId,
        /// Its status.
        status: InvoiceStatus,
    },
    /// The requested status change is not allowed from the current status.
    #[error("invoice {id} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The invoice.
        id: InvoiceId,
        /// Current status.
        from: InvoiceStatus,
        /// Requested status.
        to: InvoiceStatus,
    },
    /// Discount, tax and credit lines are computed, not added by hand.
    #[error("{kind} lines are computed by the invoice and cannot be added or removed directly")]
    ComputedLine {
        /// The line kind.
        kind: &'static str,
    },
    /// No line at this index.
    #[error("no line at index {index}: the invoice has {len} lines")]
    NoSuchLine {
        /// The index asked for.
        index: usize,
        /// Number of lines.
        len: usize,
    },
    /// More than [`INVOICE_LINES_MAX`] lines or [`INVOICE_COUPONS_MAX`] coupons.
    #[error("too many {what}: the maximum is {max}")]
    TooMany {
        /// `"lines"` or `"coupons"`.
        what: &'static str,
        /// The maximum.
        max: usize,
    },
    /// A text field is empty where it may not be, or longer than [`INVOICE_TEXT_BYTES_MAX`].
    #[error("{field} must be 1 to {INVOICE_TEXT_BYTES_MAX} bytes, got {len_bytes}")]
    TextLength {
        /// Which field.
        field: &'static str,
        /// Its length.
        len_bytes: usize,
    },
    /// The billing period ends before it starts.
    #[error("invoice period [{start_unix_ms}, {end_unix_ms}) is empty or reversed")]
    InvalidPeriod {
        /// Period start.
        start_unix_ms: i64,
        /// Period end.
        end_unix_ms: i64,
    },
    /// Money arithmetic failed (overflow or currency mismatch).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// Pricing a metric's overage failed.
    #[error("pricing {metric}: {source}")]
    Price {
        /// The metric.
        metric: MetricId,
        /// Why.
        #[source]
        source: PriceError,
    },
    /// Usage exceeds the included quantity but the plan has no overage price.
    #[error("plan {plan} has no overage price for {metric}, but {overage} is over the included quantity")]
    NoOveragePrice {
        /// The plan.
        plan: PlanId,
        /// The metric.
        metric: MetricId,
        /// The unpriced overage quantity.
        overage: Decimal,
    },
    /// Metered usage is negative.
    #[error("usage of {metric} is negative: {used}")]
    NegativeUsage {
        /// The metric.
        metric: MetricId,
        /// The reported usage.
        used: Decimal,
    },
    /// The plan has no base price for the interval (e.g. no yearly price).
    #[error("plan {plan} has no {interval} price")]
    NoBasePrice {
        /// The plan.
        plan: PlanId,
        /// The interval asked for.
        interval: BillingInterval,
    },
    /// The tax rate is below 0% or above 100%.
    #[error("tax rate {rate_percent}% is outside 0..=100")]
    TaxRateOutOfRange {
        /// The rejected rate.
        rate_percent: Decimal,
    },
    /// A percent coupon is not in `0 < percent <= 100`.
    #[error("coupon {coupon}: percent {percent} is outside (0, 100]")]
    CouponPercentOutOfRange {
        /// The coupon.
        coupon: CouponId,
        /// The rejected percentage.
        percent: Decimal,
    },
    /// An amount coupon is zero, negative or in another currency.
    #[error("coupon {coupon}: amount {amount} is not a positive amount in {currency}")]
    InvalidCouponAmount {
        /// The coupon.
        coupon: CouponId,
        /// The coupon's amount.
        amount: Money,
        /// The invoice currency.
        currency: Currency,
    },
    /// The same coupon is attached twice.
    #[error("coupon {coupon} is already on the invoice")]
    DuplicateCoupon {
        /// The coupon.
        coupon: CouponId,
    },
    /// No coupon with this id is on the invoice.
    #[error("coupon {coupon} is not on the invoice")]
    NoSuchCoupon {
        /// The coupon.
        coupon: CouponId,
    },
    /// The account credit available is negative.
    #[error("available credit {credit} is negative")]
    NegativeCredit {
        /// The rejected credit.
        credit: Money,
    },
    /// The stored totals disagree with the lines (checked at finalize).
    #[error(
        "invoice {id} totals do not match its lines: {field} is {stored}, lines give {computed}"
    )]
    TotalsMismatch {
        /// The invoice.
        id: InvoiceId,
        /// Which total.
        field: &'static str,
        /// The stored value.
        stored: Money,
        /// The value the lines give.
        computed: Money,
    },
    /// Taking an invoice number failed.
    #[error(transparent)]
    Numbering(#[from] NumberingError),
}

/// An invoice's id (assigned by the caller, unique per issuer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvoiceId(pub String);

impl fmt::Display for InvoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A half-open time span `[start_unix_ms, end_unix_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InvoicePeriod {
    /// First millisecond of the period.
    pub start_unix_ms: i64,
    /// First millisecond after the period.
    pub end_unix_ms: i64,
}

impl InvoicePeriod {
    /// A period; `start_unix_ms` must be before `end_unix_ms`.
    pub fn new(start_unix_ms: i64, end_unix_ms: i64) -> Result<InvoicePeriod, InvoiceError> {
        if start_unix_ms < end_unix_ms {
            Ok(InvoicePeriod {
                start_unix_ms,
                end_unix_ms,
            })
        } else {
            Err(InvoiceError::InvalidPeriod {
                start_unix_ms,
                end_unix_ms,
            })
        }
    }
}

/// Where an invoice is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Editable; no number yet.
    Draft,
    /// Numbered and immutable; awaiting payment.
    Finalized,
    /// Paid.
    Paid,
    /// Cancelled while unpaid.
    Void,
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Finalized => "finalized",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        })
    }
}

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
}

fn check_text(field: &'static str, text: &str) -> Result<(), InvoiceError> {
    if text.is_empty() || text.len() > INVOICE_TEXT_BYTES_MAX {
        Err(InvoiceError::TextLength {
            field,
            len_bytes: text.len(),
        })
    } else {
        Ok(())
    }
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

    fn single(
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
        }
    }
}

/// An invoice. Fields are private so that a finalized invoice cannot be
/// changed; read them through the accessors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    id: InvoiceId,
    number: Option<InvoiceNumber>,
    tenant: String,
    currency: Currency,
    period_start_unix_ms: i64,
    period_end_unix_ms: i64,
    status: InvoiceStatus,
    lines: Vec<InvoiceLine>,
    subtotal: Money,
    discount_total: Money,
    tax_total: Money,
    credit_applied: Money,
    total: Money,
    amount_due: Money,
    tax_rate_percent: Decimal,
    coupons: Vec<CouponRedemption>,
    credit_available: Money,
    issued_at_unix_ms: Option<i64>,
    paid_at_unix_ms: Option<i64>,
    payment_reference: Option<String>,
    voided_at_unix_ms: Option<i64>,
    void_reason: Option<String>,
}

/// The totals and computed lines derived from the charge lines and inputs.
struct Computed {
    lines: Vec<InvoiceLine>,
    subtotal: Money,
    discount_total: Money,
    tax_total: Money,
    credit_applied: Money,
    total: Money,
}

impl Invoice {
    /// An empty draft.
    pub fn draft(
        id: InvoiceId,
        tenant: impl Into<String>,
        currency: Currency,
        period: InvoicePeriod,
    ) -> Result<Invoice, InvoiceError> {
        let tenant = tenant.into();
        check_text("tenant", &tenant)?;
        check_text("invoice id", &id.0)?;
        let zero = Money::zero(currency);
        Ok(Invoice {
            id,
            number: None,
            tenant,
            currency,
            period_start_unix_ms: period.start_unix_ms,
            period_end_unix_ms: period.end_unix_ms,
            status: InvoiceStatus::Draft,
            lines: Vec::new(),
            subtotal: zero,
            discount_total: zero,
            tax_total: zero,
            credit_applied: zero,
            total: zero,
            amount_due: zero,
            tax_rate_percent: Decimal::ZERO,
            coupons: Vec::new(),
            credit_available: zero,
            issued_at_unix_ms: None,
            paid_at_unix_ms: None,
            payment_reference: None,
            voided_at_unix_ms: None,
            void_reason: None,
        })
    }

    /// The invoice id.
    pub fn id(&self) -> &InvoiceId {
        &self.id
    }
    /// The number, once finalized.
    pub fn number(&self) -> Option<&InvoiceNumber> {
        self.number.as_ref()
    }
    /// The tenant billed.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    /// The currency of every amount.
    pub fn currency(&self) -> Currency {
        self.currency
    }
    /// The billing period.
    pub fn period(&self) -> InvoicePeriod {
        InvoicePeriod {
            start_unix_ms: self.period_start_unix_ms,
            end_unix_ms: self.period_end_unix_ms,
        }
    }
    /// Start of the billing period.
    pub fn period_start_unix_ms(&self) -> i64 {
        self.period_start_unix_ms
    }
    /// End of the billing period (exclusive).
    pub fn period_end_unix_ms(&self) -> i64 {
        self.period_end_unix_ms
    }
    /// Lifecycle status.
    pub fn status(&self) -> InvoiceStatus {
        self.status
    }
    /// All lines: charges in the order added, then discounts, tax, credit.
    pub fn lines(&self) -> &[InvoiceLine] {
        &self.lines
    }
    /// Sum of the charge lines.
    pub fn subtotal(&self) -> Money {
        self.subtotal
    }
    /// Sum of the discounts, as a positive amount.
    pub fn discount_total(&self) -> Money {
        self.discount_total
    }
    /// Sum of the tax lines.
    pub fn tax_total(&self) -> Money {
        self.tax_total
    }
    /// Account credit applied, as a positive amount.
    pub fn credit_applied(&self) -> Money {
        self.credit_applied
    }
    /// Sum of all lines.
    pub fn total(&self) -> Money {
        self.total
    }
    /// What remains to pay: the total (never below zero) until paid or voided, then zero.
    pub fn amount_due(&self) -> Money {
        self.amount_due
    }
    /// The tax rate, in percent.
    pub fn tax_rate_percent(&self) -> Decimal {
        self.tax_rate_percent
    }
    /// The coupons attached (active or not for this period).
    pub fn coupons(&self) -> &[CouponRedemption] {
        &self.coupons
    }
    /// The ids of the coupons that discount this invoice.
    pub fn applied_coupons(&self) -> Vec<CouponId> {
        self.lines
            .iter()
            .filter_map(|line| match &line.kind {
                InvoiceLineKind::Discount { coupon, .. } => Some(coupon.clone()),
                _ => None,
            })
            .collect()
    }
    /// The account credit that was available to this invoice.
    pub fn credit_available(&self) -> Money {
        self.credit_available
    }
    /// The account credit left after this invoice.
    pub fn remaining_credit(&self) -> Result<Money, InvoiceError> {
        Ok(self.credit_available.checked_sub(self.credit_applied)?)
    }
    /// When the invoice was finalized.
    pub fn issued_at_unix_ms(&self) -> Option<i64> {
        self.issued_at_unix_ms
    }
    /// When it was paid.
    pub fn paid_at_unix_ms(&self) -> Option<i64> {
        self.paid_at_unix_ms
    }
    /// The payment's reference.
    pub fn payment_reference(&self) -> Option<&str> {
        self.payment_reference.as_deref()
    }
    /// When it was voided.
    pub fn voided_at_unix_ms(&self) -> Option<i64> {
        self.voided_at_unix_ms
    }
    /// Why it was voided.
    pub fn void_reason(&self) -> Option<&str> {
        self.void_reason.as_deref()
    }

    fn ensure_draft(&self) -> Result<(), InvoiceError> {
        if self.status == InvoiceStatus::Draft {
            Ok(())
        } else {
            Err(InvoiceError::Immutable {
                id: self.id.clone(),
                status: self.status,
            })
        }
    }

    /// Applies `edit` to a copy of the draft, recomputes the derived lines
    /// and totals, and keeps the result only if all of it succeeded.
    fn edit<T>(
        &mut self,
        edit: impl FnOnce(&mut Invoice) -> Result<T, InvoiceError>,
    ) -> Result<T, InvoiceError> {
        self.ensure_draft()?;
        let mut next = self.clone();
        let value = edit(&mut next)?;
        next.recompute()?;
        *self = next;
        Ok(value)
    }

    /// Adds a charge line (base fee, overage, proration, adjustment).
    pub fn add_line(&mut self, line: InvoiceLine) -> Result<(), InvoiceError> {
        self.edit(|invoice| {
            if line.kind.is_computed() {
                return Err(InvoiceError::ComputedLine {
                    kind: line.kind.name(),
                });
            }
            check_text("description", &line.description)?;
            if line.amount.currency != invoice.currency {
                return Err(MoneyError::CurrencyMismatch {
                    left: invoice.currency,
                    right: line.amount.currency,
                }
                .into());
            }
            if invoice.lines.len() >= INVOICE_LINES_MAX {
                return Err(InvoiceError::TooMany {
                    what: "lines",
                    max: INVOICE_LINES_MAX,
                });
            }
            invoice.lines.push(line);
            Ok(())
        })
    }

    /// Removes and returns the charge line at `index` (of [`Invoice::lines`]).
    pub fn remove_line(&mut self, index: usize) -> Result<InvoiceLine, InvoiceError> {
        self.edit(|invoice| {
            let len = invoice.lines.len();
            let line = invoice
                .lines
                .get(index)
                .ok_or(InvoiceError::NoSuchLine { index, len })?;
            if line.kind.is_computed() {
                return Err(InvoiceError::ComputedLine {
                    kind: line.kind.name(),
                });
            }
            Ok(invoice.lines.remove(index))
        })
    }

    /// Sets the tax rate in percent (`0..=100`, e.g. `8.25`).
    pub fn set_tax_rate_percent(&mut self, rate_percent: Decimal) -> Result<(), InvoiceError> {
        self.edit(|invoice| {
            if rate_percent < Decimal::ZERO || rate_percent > Decimal::ONE_HUNDRED {
                return Err(InvoiceError::TaxRateOutOfRange { rate_percent });
            }
            invoice.tax_rate_percent = rate_percent;
            Ok(())
        })
    }

    /// Attaches a coupon redemption; it discounts the invoice if its
    /// duration covers the invoice period.
    pub fn add_coupon(&mut self, redemption: CouponRedemption) -> Result<(), InvoiceError> {
        self.edit(|invoice| {
            invoice.check_coupon(&redemption.coupon)?;
            invoice.coupons.push(redemption);
            Ok(())
        })
    }

    /// Detaches a coupon.
    pub fn remove_coupon(&mut self, coupon: &CouponId) -> Result<CouponRedemption, InvoiceError> {
        self.edit(|invoice| {
            let index = invoice
                .coupons
                .iter()
                .position(|redemption| &redemption.coupon.id == coupon)
                .ok_or_else(|| InvoiceError::NoSuchCoupon {
                    coupon: coupon.clone(),
                })?;
            Ok(invoice.coupons.remove(index))
        })
    }

    /// Sets the account credit available to this invoice (applied after tax).
    pub fn set_credit_available(&mut self, credit: Money) -> Result<(), InvoiceError> {
        self.edit(|invoice| {
            if credit.currency != invoice.currency {
                return Err(MoneyError::CurrencyMismatch {
                    left: invoice.currency,
                    right: credit.currency,
                }
                .into());
            }
            if credit.is_negative() {
                return Err(InvoiceError::NegativeCredit { credit });
            }
            invoice.credit_available = credit;
            Ok(())
        })
    }

    fn check_coupon(&self, coupon: &Coupon) -> Result<(), InvoiceError> {
        if self.coupons.len() >= INVOICE_COUPONS_MAX {
            return Err(InvoiceError::TooMany {
                what: "coupons",
                max: INVOICE_COUPONS_MAX,
            });
        }
        if self
            .coupons
            .iter()
            .any(|redemption| redemption.coupon.id == coupon.id)
        {
            return Err(InvoiceError::DuplicateCoupon {
                coupon: coupon.id.clone(),
            });
        }
        match coupon.kind {
            CouponKind::Percent { percent }
                if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED =>
            {
                Err(InvoiceError::CouponPercentOutOfRange {
                    coupon: coupon.id.clone(),
                    percent,
                })
            }
            CouponKind::Amount { amount }
                if amount.currency != self.currency || !amount.is_positive() =>
            {
                Err(InvoiceError::InvalidCouponAmount {
                    coupon: coupon.id.clone(),
                    amount,
                    currency: self.currency,
                })
            }
            _ => Ok(()),
        }
    }

    /// Recomputes discounts, tax, credit and the totals from the charge lines.
    fn recompute(&mut self) -> Result<(), InvoiceError> {
        let computed = self.compute()?;
        self.lines = computed.lines;
        self.subtotal = computed.subtotal;
        self.discount_total = computed.discount_total;
        self.tax_total = computed.tax_total;
        self.credit_applied = computed.credit_applied;
        self.total = computed.total;
        self.amount_due = computed.total.checked_max(Money::zero(self.currency))?;
        debug_assert!(
            self.check_totals().is_ok(),
            "freshly computed totals must match the lines"
        );
        Ok(())
    }

    fn compute(&self) -> Result<Computed, InvoiceError> {
        let currency = self.currency;
        let zero = Money::zero(currency);
        let mut lines: Vec<InvoiceLine> = self
            .lines
            .iter()
            .filter(|line| !line.kind.is_computed())
            .cloned()
            .collect();
        let subtotal = Money::checked_sum(currency, lines.iter().map(|line| line.amount))?;

        // Discounts: each active coupon on the subtotal, capped by what is left.
        let mut discountable = subtotal.checked_max(zero)?;
        let mut discount_total = zero;
        for redemption in self
            .coupons
            .iter()
            .filter(|redemption| redemption.applies_to_period(self.period_start_unix_ms))
        {
            let line = discount_line(&redemption.coupon, subtotal, discountable)?;
            let discount = line.amount.checked_neg()?;
            discountable = discountable.checked_sub(discount)?;
            discount_total = discount_total.checked_add(discount)?;
            lines.push(line);
        }

        // Tax on what is left after discounts.
        let taxable = subtotal.checked_sub(discount_total)?;
        let mut tax_total = zero;
        if taxable.is_positive() && self.tax_rate_percent > Decimal::ZERO {
            let rate = self.tax_rate_percent / Decimal::ONE_HUNDRED;
            let base = taxable.to_decimal();
            let exact = base.checked_mul(rate).ok_or(MoneyError::OutOfRange {
                amount: base,
                currency,
            })?;
            tax_total = Money::from_decimal(exact, currency)?;
            lines.push(InvoiceLine {
                kind: InvoiceLineKind::Tax {
                    rate_percent: self.tax_rate_percent,
                },
                description: format!("Tax ({}%)", self.tax_rate_percent.normalize()),
                quantity: base,
                unit_price: Some(rate),
                amount: tax_total,
                period: None,
                pricing: Vec::new(),
            });
        }

        // Account credit after tax, up to the amount due.
        let before_credit = taxable.checked_add(tax_total)?;
        let credit_applied = self
            .credit_available
            .checked_min(before_credit.checked_max(zero)?)?;
        if credit_applied.is_positive() {
            let amount = credit_applied.checked_neg()?;
            lines.push(InvoiceLine::single(
                InvoiceLineKind::Credit,
                "Account credit applied".to_owned(),
                amount,
                None,
            ));
        }
        let total = before_credit.checked_sub(credit_applied)?;
        Ok(Computed {
            lines,
            subtotal,
            discount_total,
            tax_total,
            credit_applied,
            total,
        })
    }

    /// Checks the totals invariant: each total equals the sum of its lines,
    /// `total = Σ lines`, and `total = subtotal − discounts + tax − credit`.
    pub fn check_totals(&self) -> Result<(), InvoiceError> {
        let currency = self.currency;
        let sum_of = |predicate: &dyn Fn(&InvoiceLineKind) -> bool| {
            Money::checked_sum(
                currency,
                self.lines
                    .iter()
                    .filter(|line| predicate(&line.kind))
                    .map(|line| line.amount),
            )
        };
        let subtotal = sum_of(&|kind| !kind.is_computed())?;
        let discounts =
            sum_of(&|kind| matches!(kind, InvoiceLineKind::Discount { .. }))?.checked_neg()?;
        let tax = sum_of(&|kind| matches!(kind, InvoiceLineKind::Tax { .. }))?;
        let credit = sum_of(&|kind| matches!(kind, InvoiceLineKind::Credit))?.checked_neg()?;
        let all_lines = sum_of(&|_| true)?;
        let by_parts = subtotal
            .checked_sub(discounts)?
            .checked_add(tax)?
            .checked_sub(credit)?;
        let checks = [
            ("subtotal", self.subtotal, subtotal),
            ("discount_total", self.discount_total, discounts),
            ("tax_total", self.tax_total, tax),
            ("credit_applied", self.credit_applied, credit),
            ("total", self.total, all_lines),
            ("total", self.total, by_parts),
        ];
        for (field, stored, computed) in checks {
            if stored != computed {
                return Err(InvoiceError::TotalsMismatch {
                    id: self.id.clone(),
                    field,
                    stored,
                    computed,
                });
            }
        }
        Ok(())
    }

    /// Finalizes the draft: checks the totals, takes the next gapless number
    /// of `prefix` for the current UTC year, and makes the invoice immutable.
    /// Nothing is taken from the sequence unless finalization succeeds.
    pub fn finalize(
        &mut self,
        numbers: &dyn InvoiceNumberSequence,
        prefix: &InvoicePrefix,
        clock: &dyn Clock,
    ) -> Result<&InvoiceNumber, InvoiceError> {
        self.ensure_draft()?;
        let now_unix_ms = clock.now_unix_ms();
        let year = utc_year(now_unix_ms)?;
        self.check_totals()?;
        let amount_due = self.total.checked_max(Money::zero(self.currency))?;
        // Every fallible step is above: from here the number is always used.
        let number = numbers.next_number(prefix, year)?;
        self.amount_due = amount_due;
        self.status = InvoiceStatus::Finalized;
        self.issued_at_unix_ms = Some(now_unix_ms);
        Ok(self.number.insert(number))
    }

    /// Records payment of a finalized invoice.
    pub fn pay(
        &mut self,
        payment_reference: impl Into<String>,
        clock: &dyn Clock,
    ) -> Result<(), InvoiceError> {
        let payment_reference = payment_reference.into();
        self.transition(InvoiceStatus::Paid)?;
        check_text("payment reference", &payment_reference)?;
        self.status = InvoiceStatus::Paid;
        self.paid_at_unix_ms = Some(clock.now_unix_ms());
        self.payment_reference = Some(payment_reference);
        self.amount_due = Money::zero(self.currency);
        Ok(())
    }

    /// Voids a finalized, unpaid invoice.
    pub fn void(
        &mut self,
        reason: impl Into<String>,
        clock: &dyn Clock,
    ) -> Result<(), InvoiceError> {
        let reason = reason.into();
        self.transition(InvoiceStatus::Void)?;
        check_text("void reason", &reason)?;
        self.status = InvoiceStatus::Void;
        self.voided_at_unix_ms = Some(clock.now_unix_ms());
        self.void_reason = Some(reason);
        self.amount_due = Money::zero(self.currency);
        Ok(())
    }

    fn transition(&self, to: InvoiceStatus) -> Result<(), InvoiceError> {
        if self.status == InvoiceStatus::Finalized {
            Ok(())
        } else {
            Err(InvoiceError::InvalidTransition {
                id: self.id.clone(),
                from: self.status,
                to,
            })
        }
    }

    /// The invoice as pretty JSON (every field, amounts in minor units,
    /// decimals as strings).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an invoice has only string map keys")
    }

    /// Reads an invoice back from [`Invoice::to_json`] output. The totals are
    /// not re-checked here; [`Invoice::check_totals`] does that (and
    /// [`Invoice::finalize`] calls it).
    pub fn from_json(text: &str) -> Result<Invoice, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The invoice as fixed-width plain text (see the `render` module).
    pub fn render_text(&self) -> String {
        render::render_text(self)
    }
}

/// The discount line of a coupon: the exact discount rounded half-even, then
/// capped by what is still discountable.
fn discount_line(
    coupon: &Coupon,
    subtotal: Money,
    discountable: Money,
) -> Result<InvoiceLine, InvoiceError> {
    let currency = subtotal.currency;
    let base = subtotal.to_decimal().max(Decimal::ZERO);
    let (wanted, percent, unit_price, description) = match coupon.kind {
        CouponKind::Percent { percent } => {
            let rate = percent / Decimal::ONE_HUNDRED;
            let exact = base.checked_mul(rate).ok_or(MoneyError::OutOfRange {
                amount: base,
                currency,
            })?;
            let description = format!("Coupon {} ({}% off)", coupon.id, percent.normalize());
            (
                Money::from_decimal(exact, currency)?,
                Some(percent),
                -rate,
                description,
            )
        }
        CouponKind::Amount { amount } => {
            let description = format!("Coupon {} ({} off)", coupon.id, amount);
            (amount, None, -amount.to_decimal(), description)
        }
    };
    let discount = wanted.checked_min(discountable)?;
    let capped = discount != wanted;
    let (quantity, unit_price, description) = match (capped, percent) {
        (false, Some(_)) => (base, Some(unit_price), description),
        (false, None) => (Decimal::ONE, Some(unit_price), description),
        (true, Some(_)) => (
            base,
            None,
            format!("{description}, capped at the remaining subtotal"),
        ),
        (true, None) => (
            Decimal::ONE,
            Some(-discount.to_decimal()),
            format!("{description}, capped at the remaining subtotal"),
        ),
    };
    Ok(InvoiceLine {
        kind: InvoiceLineKind::Discount {
            coupon: coupon.id.clone(),
            percent,
        },
        description,
        quantity,
        unit_price,
        amount: discount.checked_neg()?,
        period: None,
        pricing: Vec::new(),
    })
}
