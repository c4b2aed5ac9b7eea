//! Invoices: lines, totals, and the draft -> finalized -> paid / void lifecycle.
//!
//! An [`Invoice`] starts as a draft, built by an [`InvoiceBuilder`] from a
//! plan's base fee, metered usage (overage = `max(0, used - included)` priced
//! by the plan's [`PriceModel`](crate::PriceModel)), proration and adjustment amounts, coupons, a
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
//! A negative subtotal (for example a downgrade credit larger than the
//! charges) gets no discount and no account credit, but its tax line is
//! negative, so the credit gives back the tax the charge carried;
//! `amount_due` is zero, and turning the negative total into account credit
//! is the caller's job.
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
mod line;
mod numbering;
mod render;
mod store;
mod totals;

use aerolith_core::Clock;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use builder::InvoiceBuilder;
pub use coupon::{Coupon, CouponDuration, CouponId, CouponKind, CouponRedemption};
pub use credit_note::{
    CreditNote, CreditNoteError, CreditNoteLine, CreditNoteReason, CreditNoteRequest,
};
pub use line::{InvoiceLine, InvoiceLineKind, UsageSource};
pub use numbering::{
    utc_year, InMemoryInvoiceNumberSequence, InvoiceNumber, InvoiceNumberSequence, InvoicePrefix,
    NumberingError, PREFIX_LENGTH_MAX, SEQUENCE_DIGITS,
};
pub use render::TEXT_WIDTH;
pub use store::{
    InMemoryInvoiceStore, InvoiceStore, InvoiceStoreError, IssueCreditNote, IN_MEMORY_INVOICES_MAX,
};

use crate::catalog::{BillingInterval, MetricId, PlanId};
use crate::money::{Currency, Money, MoneyError};
use crate::price::PriceError;

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
