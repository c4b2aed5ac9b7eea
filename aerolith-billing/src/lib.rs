//! Aerolith billing: how the product earns money, exact as a ledger.
//!
//! Layers, bottom up:
//!
//! - [`money`] — currencies, [`Money`] in integer minor units with checked
//!   arithmetic, and the crate's one rounding rule (half-even, once per
//!   invoice line).
//! - [`price`] — [`PriceModel`] (flat, per unit, package, graduated, volume)
//!   turning a quantity into an exact decimal amount.
//! - [`catalog`] — plans, included usage, limits and overage prices as data
//!   ([`Catalog`]), loadable from TOML or JSON, with the default catalog.
//! - [`invoice`] — drafts built from a plan and usage, coupons, tax and account
//!   credit; finalization with gapless numbers; payment, voiding, credit notes;
//!   JSON and plain-text rendering.
//! - [`period`] — billing periods anchored on the start date (end-of-month
//!   anchors handled).
//! - [`subscription`] — the subscription state machine (trialing, active,
//!   past due, suspended, canceled) driven by a `Clock`.
//! - [`proration`] — plan changes mid-period, to the second, with a preview
//!   that equals what is applied.
//! - [`dunning`] — retries after a failed payment, grace, suspension,
//!   cancellation.
//! - [`payment`] — the `PaymentProvider` trait with idempotency; manual, test
//!   and crypto (Solana, Tron) providers; webhook signature verification.
//! - [`metering`] — the usage hot path (per-tenant atomic counters), the
//!   drain thread, the usage ledger, and the mapping of ledger metrics to
//!   billable catalog metrics (`metering::billable_usage`).
//! - [`service`] — [`BillingService`]: all of the above tied together and
//!   persisted in `billing.*` collections of an Aerolith database:
//!   subscribe, change plan, cancel, invoices (gapless numbers committed with
//!   the invoice), payments with durable idempotency keys, credit notes, and
//!   the billing run (`run_due`: trials, renewals, charges, dunning), acting
//!   on tenants through [`TenantControl`] (suspend, resume, audit).
//!
//! No floats anywhere: amounts are `i64` minor units or `rust_decimal::Decimal`.
#![warn(missing_docs)]

pub mod catalog;
pub mod dunning;
pub mod invoice;
pub mod metering;
pub mod money;
pub mod payment;
pub mod period;
pub mod price;
pub mod proration;
pub mod service;
pub mod subscription;

pub use catalog::{
    BasePrice, BillingInterval, Catalog, CatalogError, IdError, IncludedQuantity, MetricDefinition,
    MetricId, Plan, PlanId, PlanLimits,
};
pub use invoice::{
    Coupon, CouponDuration, CouponId, CouponKind, CouponRedemption, CreditNote, CreditNoteError,
    CreditNoteLine, CreditNoteReason, CreditNoteRequest, InMemoryInvoiceNumberSequence,
    InMemoryInvoiceStore, Invoice, InvoiceBuilder, InvoiceError, InvoiceId, InvoiceLine,
    InvoiceLineKind, InvoiceNumber, InvoiceNumberSequence, InvoicePeriod, InvoicePrefix,
    InvoiceStatus, InvoiceStore, InvoiceStoreError, NumberingError, UsageSource,
};
pub use money::{Currency, Money, MoneyError, MoneyOperation};
pub use price::{PriceComponent, PriceError, PriceModel, PriceTier};
pub use service::{
    BillingEvent, BillingRunReport, BillingService, BillingServiceConfig, BillingServiceError,
    BillingServiceOptions, CancelMode, InMemoryTenantControl, PayInvoiceRequest, PaymentAttempt,
    PlanChangeOutcome, SubscribeOutcome, SubscribeRequest, TenantBillingSettings, TenantControl,
    AUTO_CHARGE_KEY_PREFIX,
};
