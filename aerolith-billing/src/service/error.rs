//! The billing service's error type: one enum for every operation, with the
//! facts (tenant, invoice, plan) as fields and the lower layers' typed errors
//! wrapped, never stringified.

use aerolith_tenancy::TenantId;
use rust_decimal::Decimal;

use super::tenant_control::TenantControlError;
use crate::catalog::BillingInterval;
use crate::dunning::DunningError;
use crate::invoice::{CreditNoteError, InvoiceError, InvoiceId, InvoiceStatus, NumberingError};
use crate::metering::BillableUsageError;
use crate::money::{Money, MoneyError};
use crate::payment::PaymentError;
use crate::proration::ProrationError;
use crate::subscription::SubscriptionError;

/// Errors of [`BillingService`](super::BillingService) operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BillingServiceError {
    /// The catalog has no such plan.
    #[error("unknown plan {plan_id}")]
    UnknownPlan {
        /// The plan asked for.
        plan_id: String,
    },
    /// The plan is not sold for this interval.
    #[error("plan {plan_id} has no {interval} price")]
    NoPriceForInterval {
        /// The plan.
        plan_id: String,
        /// The interval asked for.
        interval: BillingInterval,
    },
    /// The tenant already has a subscription that is not canceled.
    #[error("tenant {tenant} already has a subscription")]
    AlreadySubscribed {
        /// The tenant.
        tenant: TenantId,
    },
    /// The tenant has no subscription.
    #[error("tenant {tenant} has no subscription")]
    NoSubscription {
        /// The tenant.
        tenant: TenantId,
    },
    /// The tenant has no invoice with this id (also the answer for another
    /// tenant's invoice, so the answer reveals nothing).
    #[error("tenant {tenant} has no invoice {invoice_id}")]
    InvoiceNotFound {
        /// The tenant.
        tenant: TenantId,
        /// The invoice asked for.
        invoice_id: InvoiceId,
    },
    /// The invoice cannot be paid in its status (void, draft, already paid
    /// under another key).
    #[error("invoice {invoice_id} is {status} and cannot be paid")]
    InvoiceNotPayable {
        /// The invoice.
        invoice_id: InvoiceId,
        /// Its status.
        status: InvoiceStatus,
    },
    /// The idempotency key is in the space the billing run reserves for its
    /// own charges ([`AUTO_CHARGE_KEY_PREFIX`](super::AUTO_CHARGE_KEY_PREFIX)).
    #[error("idempotency key {key:?} is reserved for automatic charges")]
    ReservedIdempotencyKey {
        /// The key given.
        key: String,
    },
    /// No payment provider of this name is configured.
    #[error("no payment provider named {name}")]
    UnknownProvider {
        /// The name asked for.
        name: String,
    },
    /// The tenant already redeemed this coupon.
    #[error("tenant {tenant} already has coupon {coupon}")]
    DuplicateCoupon {
        /// The tenant.
        tenant: TenantId,
        /// The coupon.
        coupon: String,
    },
    /// A coupon's percent or amount is invalid.
    #[error("coupon {coupon} is invalid: {problem}")]
    InvalidCoupon {
        /// The coupon.
        coupon: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Account credit must be a positive amount in the catalog's currency.
    #[error("account credit {amount} is not a positive amount in the catalog currency")]
    InvalidCredit {
        /// The rejected amount.
        amount: Money,
    },
    /// The tax rate is outside `0..=100` percent.
    #[error("tax rate {rate_percent}% is outside 0..=100")]
    TaxRateOutOfRange {
        /// The rejected rate.
        rate_percent: Decimal,
    },
    /// A stored document could not be read back.
    #[error("corrupt billing document {collection}/{id}: {detail}")]
    Corrupt {
        /// The collection.
        collection: &'static str,
        /// The document id.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// The stored invoices of a number series do not match its counter.
    #[error("number series {series} has a gap: counter at {counter}, {stored} numbers stored")]
    NumberingGap {
        /// The series, e.g. `AER-2026`.
        series: String,
        /// The stored counter.
        counter: u64,
        /// Distinct consecutive numbers found.
        stored: u64,
    },
    /// The storage engine failed; nothing of the operation was committed.
    #[error("billing storage: {0}")]
    Storage(#[from] aerolith_core::Error),
    /// A subscription transition was refused.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// A plan change could not be prorated.
    #[error(transparent)]
    Proration(#[from] ProrationError),
    /// An invoice could not be built or moved through its lifecycle.
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    /// A number could not be taken.
    #[error(transparent)]
    Numbering(#[from] NumberingError),
    /// A credit note was refused.
    #[error(transparent)]
    CreditNote(#[from] CreditNoteError),
    /// Dunning refused a transition.
    #[error(transparent)]
    Dunning(#[from] DunningError),
    /// The payment could not be decided (a decline is not an error).
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// A billing period could not be computed.
    #[error(transparent)]
    Period(#[from] crate::period::PeriodError),
    /// Metered usage could not be read.
    #[error(transparent)]
    Usage(#[from] BillableUsageError),
    /// Money arithmetic failed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// Billing committed, but tenancy failed to suspend, resume or audit.
    #[error("billing state committed, but tenancy failed: {0}")]
    TenantControl(#[from] TenantControlError),
}
