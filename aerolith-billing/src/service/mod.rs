//! The billing service: subscriptions, invoices, payments and dunning tied
//! together and persisted in an Aerolith database.
//!
//! [`BillingService`] owns the `billing.*` collections of a [`Database`] the
//! caller opens (the server's billing database, which also holds the usage
//! ledger of [`EngineLedger`](crate::metering::EngineLedger)); see `store`
//! for the documents. Every operation reads the time from the [`Clock`],
//! works on copies of the tenant's state, commits all of its documents in
//! one `WriteBatch`, then updates the in-memory mirror, then tells tenancy
//! ([`TenantControl`]: suspend, resume, audit). A failed commit changes
//! nothing; a failed tenancy call is reported after the commit.
//!
//! **Invariant:** invoice numbers are gapless across crashes: a number is
//! taken only from a staged copy of the counters, and the counter, the
//! finalized invoice and the rest of the operation are one batch.
//!
//! **Invariant:** lookups are keyed by tenant: [`BillingService::invoice`]
//! with another tenant's invoice id is [`BillingServiceError::InvoiceNotFound`].
//!
//! Invoicing rules (the choices, stated once):
//! - A paid period is invoiced when it starts: base fee in advance, plus the
//!   overage of the period that just closed, in arrears (`metering::billable`
//!   maps the ledger to catalog metrics). The first invoice (subscription
//!   start without a trial, or trial conversion) has the base fee only:
//!   trial usage is free. A period ending in cancellation gets a final
//!   usage-only invoice (none when there is no overage).
//! - A plan change is invoiced at once with the proration lines of
//!   [`crate::proration::preview_change`] (the same lines the
//!   preview shows); a negative total (downgrade) becomes account credit,
//!   tax included (the tax line of a negative subtotal is negative).
//!   Overage of a period is priced on the plan in force when it closes.
//! - Tax rate and account credit of the tenant's settings apply to every
//!   invoice, coupons to period invoices only (not to a plan change's
//!   proration, so an upgrade and a downgrade are priced symmetrically);
//!   applied credit and coupon uses are committed with the invoice.
//! - A new invoice is charged at once through the auto-charge provider with
//!   the tenant's payment method (idempotency key `auto-<invoice>-0`; retries
//!   `auto-<invoice>-retry-<n>`; callers may not use the `auto-` prefix).
//!   Every key reaches the provider scoped to its tenant (`t<id>/<key>`), so
//!   one tenant's keys can never collide with, replay or pre-empt another's.
//!   A tenant's work that a billing run rolls back gives its invoice
//!   numbers back (they must stay gapless) but not its invoice ids, so an id
//!   is never reused for another tenant in the same run. (After a failed
//!   commit the ids of that commit are reused; the tenant-scoped keys keep a
//!   charge made for one from settling another tenant's invoice.) No
//!   payment method, a decline, or a transient failure starts dunning (policy in [`BillingServiceConfig`]).
//!   Voiding the invoice in dunning ends dunning like a payment.
//! - **Invariant:** the provider is asked to charge only invoices whose
//!   finalized state is already committed. Issuing commits the invoice with
//!   a pending-charge mark (`charge_pending` on its document); the charge follows
//!   (in the same call, or in the run's second batch) and its outcome is
//!   committed after it. A crash or storage failure in between leaves the
//!   invoice committed and still marked, and the next run repeats the
//!   charge under the same deterministic key, which a real provider
//!   deduplicates (`tests/it/charge_after_commit.rs`). Only the
//!   idempotency record of that charge can be lost, never the invoice it
//!   paid.
//! - [`BillingService::run_due`] handles, per tenant, dunning first
//!   (retries, suspension, cancellation), then the subscription's due
//!   transitions (trial end, renewals, cancel at period end). Usage must be
//!   flushed into the ledger (`Meter::flush`) before a run.
//!
//! - Paying the invoice whose dunning ended in cancellation lifts the
//!   non-payment suspension (nothing is owed); the subscription stays
//!   canceled.
//!
//! Not handled yet: overage is priced on the plan in force when the period
//! closes, so an upgrade just before renewal and a downgrade just after it
//! lower the overage (splitting usage at the change instant would close
//! it); dunning follows one invoice at a time (another invoice
//! left unpaid meanwhile stays open without its own schedule); the final
//! usage invoice of a canceled subscription is charged once and not dunned;
//! a plan change does not change the tenant's quota plan in tenancy (the
//! caller does that with `Tenancy::update_tenant`).

mod error;
mod run;
mod store;
mod tenant_control;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aerolith_core::{Clock, Database};
use aerolith_tenancy::TenantId;
use parking_lot::{Mutex, MutexGuard};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use error::BillingServiceError;
pub use run::{BillingRunFailure, BillingRunReport};
pub use store::{
    TenantBillingSettings, CREDIT_NOTES, DUNNING, INVOICES, NUMBER_SEQUENCES, PAYMENTS,
    SUBSCRIPTIONS, TENANT_SETTINGS,
};
pub use tenant_control::{
    BillingEvent, InMemoryTenantControl, InvoiceEvent, InvoiceTransition, TenantControl,
    TenantControlCall, TenantControlError,
};

use store::{Account, AccountDirty, Changes, State, StoredPayment};

use crate::catalog::{BillingInterval, Catalog, Plan};
use crate::dunning::{DunningAction, DunningEvent, DunningPhase, DunningPolicy, DunningState};
use crate::invoice::{
    Coupon, CouponKind, CouponRedemption, CreditNote, CreditNoteRequest, Invoice, InvoiceBuilder,
    InvoiceId, InvoiceLine, InvoiceNumber, InvoiceNumberSequence, InvoicePeriod, InvoicePrefix,
    InvoiceStatus, NumberingError,
};
use crate::metering::{billable_usage, UsageLedger};
use crate::money::Money;
use crate::payment::{
    ChargeRequest, IdempotentPayments, PaymentMethod, PaymentOutcome, PaymentProvider,
};
use crate::period::Interval;
use crate::proration::{apply_change, preview_change, PlanChange, ProrationPreview};
use crate::subscription::{StartOptions, Subscription, SubscriptionId, SubscriptionStatus};

/// Most tenants whose run results go into one `WriteBatch` (the engine
/// allows [`aerolith_core::limits`]-bounded batches; a tenant writes about
/// five documents).
pub const RUN_BATCH_TENANTS_MAX: usize = 2_000;

/// Reference of invoices settled without a charge (zero due, or a credit).
pub const NOTHING_DUE_REFERENCE: &str = "nothing due";

/// Plain settings of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingServiceConfig {
    /// Prefix of invoice numbers.
    pub invoice_prefix: InvoicePrefix,
    /// Prefix of credit-note numbers.
    pub credit_note_prefix: InvoicePrefix,
    /// Dunning schedule for new payment failures.
    pub dunning_policy: DunningPolicy,
    /// Tenants per `WriteBatch` in a billing run (1..=[`RUN_BATCH_TENANTS_MAX`]).
    pub run_batch_tenants: usize,
}

impl Default for BillingServiceConfig {
    fn default() -> Self {
        BillingServiceConfig {
            invoice_prefix: InvoicePrefix::invoices(),
            credit_note_prefix: InvoicePrefix::credit_notes(),
            dunning_policy: DunningPolicy::default(),
            run_batch_tenants: 1_000,
        }
    }
}

/// What the service is wired to, besides its database and catalog.
pub struct BillingServiceOptions {
    /// Plain settings.
    pub config: BillingServiceConfig,
    /// Payment providers, by their `name()`.
    pub providers: Vec<Arc<dyn PaymentProvider>>,
    /// The provider used for automatic charges (must be in `providers`).
    pub auto_charge_provider: Option<String>,
    /// Where metered usage is read from; without one, no overage is billed.
    pub usage_ledger: Option<Arc<dyn UsageLedger>>,
    /// Tenancy: suspension, resume, audit.
    pub tenant_control: Arc<dyn TenantControl>,
}

impl BillingServiceOptions {
    /// Defaults, with `tenant_control`, no providers and no ledger.
    pub fn new(tenant_control: Arc<dyn TenantControl>) -> Self {
        BillingServiceOptions {
            config: BillingServiceConfig::default(),
            providers: Vec::new(),
            auto_charge_provider: None,
            usage_ledger: None,
            tenant_control,
        }
    }
    /// Adds a provider.
    pub fn provider(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.providers.push(provider);
        self
    }
    /// Adds a provider and uses it for automatic charges.
    pub fn auto_charge(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.auto_charge_provider = Some(provider.name().to_owned());
        self.providers.push(provider);
        self
    }
    /// Reads usage from `ledger`.
    pub fn usage_ledger(mut self, ledger: Arc<dyn UsageLedger>) -> Self {
        self.usage_ledger = Some(ledger);
        self
    }
}

/// A new subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    /// The catalog plan.
    pub plan_id: String,
    /// Monthly or yearly.
    pub interval: BillingInterval,
    /// Trial length; `None` starts paid service at once.
    pub trial_days: Option<u32>,
    /// Stored as the tenant's payment method when given.
    pub payment_method: Option<PaymentMethod>,
}

/// What [`BillingService::subscribe`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The subscription.
    pub subscription: Subscription,
    /// The first invoice (none during a trial).
    pub invoice: Option<Invoice>,
}

/// When a cancellation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// Now; usage of the current period is invoiced when over the allowance.
    Now,
    /// At the end of the current period.
    AtPeriodEnd,
}

/// What [`BillingService::change_plan`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChangeOutcome {
    /// The proration, as previewed.
    pub preview: ProrationPreview,
    /// The subscription after the change.
    pub subscription: Subscription,
    /// The proration invoice (none during a trial).
    pub invoice: Option<Invoice>,
}

/// A payment of one invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayInvoiceRequest {
    /// The provider's name.
    pub provider: String,
    /// How to pay.
    pub method: PaymentMethod,
    /// The same key never charges twice, across restarts too.
    pub idempotency_key: String,
}

/// The result of a payment attempt (a decline is a result, not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAttempt {
    /// The provider's answer (or the stored one, for a repeated key).
    pub outcome: PaymentOutcome,
    /// The invoice after the attempt.
    pub invoice: Invoice,
}

/// Number counters staged for one commit: seeded from the committed ones,
/// published only once the batch holding the invoices is written.
struct Staging {
    committed: HashMap<(InvoicePrefix, i32), u64>,
    staged: Mutex<HashMap<(InvoicePrefix, i32), u64>>,
    invoice_ids_issued: u64,
    invoice_ids_staged: bool,
}

impl Staging {
    fn new(state: &State) -> Staging {
        Staging {
            committed: state.numbers.clone(),
            staged: Mutex::new(HashMap::new()),
            invoice_ids_issued: state.invoice_ids_issued,
            invoice_ids_staged: false,
        }
    }
    fn next_invoice_id(&mut self) -> InvoiceId {
        self.invoice_ids_issued += 1;
        self.invoice_ids_staged = true;
        InvoiceId(format!("inv_{:010}", self.invoice_ids_issued))
    }
    /// A restore point: the staged number counters (small: one per
    /// series).
    fn save(&self) -> HashMap<(InvoicePrefix, i32), u64> {
        self.staged.lock().clone()
    }
    /// Rolls the staged invoice *numbers* back (they must stay gapless), but
    /// never the invoice *ids*: an id handed out once, even to work that is
    /// then dropped, is never handed out again, so a payment made for it can
    /// never be matched to another invoice (ids may have gaps; numbers not).
    fn restore(&mut self, saved: HashMap<(InvoicePrefix, i32), u64>) {
        *self.staged.lock() = saved;
    }
    /// Moves the staged counters into `changes` and starts over from them.
    fn drain_into(&mut self, changes: &mut Changes) {
        let staged = std::mem::take(&mut *self.staged.lock());
        self.committed
            .extend(staged.iter().map(|(k, v)| (k.clone(), *v)));
        changes.numbers.extend(staged);
        if self.invoice_ids_staged {
            changes.invoice_ids_issued = Some(self.invoice_ids_issued);
            self.invoice_ids_staged = false;
        }
    }
}

impl InvoiceNumberSequence for Staging {
    fn next_number(
        &self,
        prefix: &InvoicePrefix,
        year: i32,
    ) -> Result<InvoiceNumber, NumberingError> {
        let mut staged = self.staged.lock();
        let key = (prefix.clone(), year);
        let last = staged
            .get(&key)
            .or_else(|| self.committed.get(&key))
            .copied()
            .unwrap_or(0);
        let next = last
            .checked_add(1)
            .ok_or_else(|| NumberingError::Exhausted {
                prefix: prefix.to_string(),
                year,
            })?;
        staged.insert(key, next);
        Ok(InvoiceNumber::new(prefix.clone(), year, next))
    }
    fn last_number(&self, prefix: &InvoicePrefix, year: i32) -> Option<InvoiceNumber> {
        let key = (prefix.clone(), year);
        let staged = self.staged.lock();
        staged
            .get(&key)
            .or_else(|| self.committed.get(&key))
            .map(|&last| InvoiceNumber::new(prefix.clone(), year, last))
    }
}

/// Something to tell tenancy after the commit, in order.
#[derive(Debug, Clone)]
enum Effect {
    Suspend,
    Resume,
    Audit(BillingEvent),
}

/// One tenant's working copy during an operation.
struct TenantWork {
    tenant: TenantId,
    /// The committed account, to write only the parts that changed.
    original: Account,
    account: Account,
    /// New or changed invoices, by id.
    invoices: BTreeMap<InvoiceId, Invoice>,
    notes: Vec<CreditNote>,
    payments: Vec<StoredPayment>,
    effects: Vec<Effect>,
}

impl TenantWork {
    fn event(&mut self, event: BillingEvent) {
        self.effects.push(Effect::Audit(event));
    }
    fn into_changes(self, changes: &mut Changes) -> (TenantId, Vec<Effect>) {
        let pending = &self.account.pending_charges;
        changes
            .invoices
            .extend(self.invoices.into_values().map(|invoice| {
                let charge_pending = pending.contains(invoice.id());
                (self.tenant, invoice, charge_pending)
            }));
        let dirty = AccountDirty::between(&self.original, &self.account);
        if dirty.any() {
            changes.accounts.insert(self.tenant, (self.account, dirty));
        }
        changes
            .credit_notes
            .extend(self.notes.into_iter().map(|note| (self.tenant, note)));
        changes.payments.extend(self.payments);
        (self.tenant, self.effects)
    }
}

/// When [`BillingService::auto_collect`] may ask the provider to charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderCall {
    /// At once: the invoice is already committed.
    Now,
    /// Only after the invoice is committed (see
    /// [`BillingService::charge_pending`]): an invoice that a failed commit
    /// could still roll back would be issued again under a new id and key,
    /// and the customer would pay twice.
    AfterCommit,
}

/// The charges of one invoice being issued.
enum Charges<'a> {
    /// Base fee of `plan` over the invoice period, plus overage of
    /// `usage_period` (if any) in arrears.
    Period {
        plan: &'a Plan,
        interval: BillingInterval,
        usage_period: Option<InvoicePeriod>,
    },
    /// Overage only (final invoice).
    UsageOnly {
        plan: &'a Plan,
        usage_period: InvoicePeriod,
    },
    /// Given lines (proration).
    Lines(Vec<InvoiceLine>),
}

/// The billing service; see the module docs.
pub struct BillingService {
    db: Database,
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    config: BillingServiceConfig,
    providers: BTreeMap<String, IdempotentPayments<Arc<dyn PaymentProvider>>>,
    auto_charge_provider: Option<String>,
    usage_ledger: Option<Arc<dyn UsageLedger>>,
    tenant_control: Arc<dyn TenantControl>,
    state: Mutex<State>,
}

impl std::fmt::Debug for BillingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingService")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn to_interval(interval: BillingInterval) -> Interval {
    match interval {
        BillingInterval::Monthly => Interval::Monthly,
        BillingInterval::Yearly => Interval::Yearly,
    }
}

fn to_billing_interval(interval: Interval) -> BillingInterval {
    match interval {
        Interval::Monthly => BillingInterval::Monthly,
        Interval::Yearly => BillingInterval::Yearly,
    }
}

fn tenant_key(tenant: TenantId) -> String {
    tenant.get().to_string()
}

impl BillingService {
    /// Opens the service on `db`: creates the `billing.*` collections if
    /// needed, reloads every subscription, invoice, counter and payment
    /// record, and checks that every number series is gapless.
    pub fn open(
        db: Database,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        options: BillingServiceOptions,
    ) -> Result<BillingService, BillingServiceError> {
        store::ensure_collections(&db)?;
        let mut state = store::load(&db)?;
        let mut records: HashMap<String, HashMap<String, _>> = HashMap::new();
        for payment in std::mem::take(&mut state.payments) {
            records
                .entry(payment.provider)
                .or_default()
                .insert(payment.key, payment.record);
        }
        let providers = options
            .providers
            .into_iter()
            .map(|provider| {
                let name = provider.name().to_owned();
                let saved = records.remove(&name).unwrap_or_default();
                (name, IdempotentPayments::with_records(provider, saved))
            })
            .collect::<BTreeMap<_, _>>();
        if let Some(name) = &options.auto_charge_provider {
            if !providers.contains_key(name) {
                return Err(BillingServiceError::UnknownProvider { name: name.clone() });
            }
        }
        let mut config = options.config;
        config.run_batch_tenants = config.run_batch_tenants.clamp(1, RUN_BATCH_TENANTS_MAX);
        config.dunning_policy.validate()?;
        Ok(BillingService {
            db,
            catalog,
            clock,
            config,
            providers,
            auto_charge_provider: options.auto_charge_provider,
            usage_ledger: options.usage_ledger,
            tenant_control: options.tenant_control,
            state: Mutex::new(state),
        })
    }

    /// The catalog in use.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn now(&self) -> i64 {
        self.clock.now_unix_ms()
    }

    fn plan(&self, plan_id: &str) -> Result<&Plan, BillingServiceError> {
        self.catalog
            .plan(plan_id)
            .ok_or_else(|| BillingServiceError::UnknownPlan {
                plan_id: plan_id.to_owned(),
            })
    }

    fn price_minor(
        &self,
        plan: &Plan,
        interval: BillingInterval,
    ) -> Result<i64, BillingServiceError> {
        let price = plan.base_price_for(interval).ok_or_else(|| {
            BillingServiceError::NoPriceForInterval {
                plan_id: plan.id.to_string(),
                interval,
            }
        })?;
        Ok(Money::from_decimal(price, self.catalog.currency)?.amount_minor)
    }

    fn work(state: &State, tenant: TenantId) -> TenantWork {
        let account = state.accounts.get(&tenant).cloned().unwrap_or_default();
        TenantWork {
            tenant,
            original: account.clone(),
            account,
            invoices: BTreeMap::new(),
            notes: Vec::new(),
            payments: Vec::new(),
            effects: Vec::new(),
        }
    }

    /// Commits one tenant's work with the staged counters, then tells tenancy.
    fn commit_work(
        &self,
        state: &mut MutexGuard<'_, State>,
        mut staging: Staging,
        work: TenantWork,
    ) -> Result<(), BillingServiceError> {
        let mut changes = Changes::default();
        staging.drain_into(&mut changes);
        let (tenant, effects) = work.into_changes(&mut changes);
        self.commit(state, changes)?;
        self.perform(tenant, &effects)
            .into_iter()
            .next()
            .map_or(Ok(()), |e| Err(e.into()))
    }

    fn commit(&self, state: &mut State, changes: Changes) -> Result<(), BillingServiceError> {
        if changes.is_empty() {
            return Ok(());
        }
        let batch = store::to_batch(&changes)?;
        self.db.write(batch)?;
        store::apply(state, changes);
        Ok(())
    }

    /// Performs the effects in order; returns the failures (all are tried).
    fn perform(&self, tenant: TenantId, effects: &[Effect]) -> Vec<TenantControlError> {
        effects
            .iter()
            .filter_map(|effect| {
                match effect {
                    Effect::Suspend => self.tenant_control.suspend_for_nonpayment(tenant),
                    Effect::Resume => self.tenant_control.resume(tenant),
                    Effect::Audit(event) => self.tenant_control.audit(tenant, event),
                }
                .err()
            })
            .collect()
    }

    // ----- reads -----

    /// The tenant's subscription, if it ever subscribed.
    pub fn subscription(&self, tenant: TenantId) -> Option<Subscription> {
        self.state
            .lock()
            .accounts
            .get(&tenant)
            .and_then(|account| account.subscription.clone())
    }

    /// The tenant's billing settings (defaults if never set).
    pub fn settings(&self, tenant: TenantId) -> TenantBillingSettings {
        self.state
            .lock()
            .accounts
            .get(&tenant)
            .map(|account| account.settings.clone())
            .unwrap_or_default()
    }

    /// The tenant's dunning state (also after it ended), if a payment ever failed.
    pub fn dunning(&self, tenant: TenantId) -> Option<DunningState> {
        self.state
            .lock()
            .accounts
            .get(&tenant)
            .and_then(|account| account.dunning.clone())
    }

    /// The tenant's invoices in issue order.
    pub fn invoices(&self, tenant: TenantId) -> Vec<Invoice> {
        let state = self.state.lock();
        state
            .invoices_by_tenant
            .get(&tenant)
            .map(|ids| ids.iter().map(|id| state.invoices[id].clone()).collect())
            .unwrap_or_default()
    }

    fn owned_invoice<'s>(
        state: &'s State,
        tenant: TenantId,
        invoice_id: &InvoiceId,
    ) -> Result<&'s Invoice, BillingServiceError> {
        state
            .invoices
            .get(invoice_id)
            .filter(|invoice| invoice.tenant() == tenant_key(tenant))
            .ok_or_else(|| BillingServiceError::InvoiceNotFound {
                tenant,
                invoice_id: invoice_id.clone(),
            })
    }

    /// One of the tenant's invoices; another tenant's id is not found.
    pub fn invoice(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
    ) -> Result<Invoice, BillingServiceError> {
        Self::owned_invoice(&self.state.lock(), tenant, invoice_id).cloned()
    }

    /// The invoice as JSON ([`Invoice::to_json`]).
    pub fn invoice_json(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
    ) -> Result<String, BillingServiceError> {
        Ok(self.invoice(tenant, invoice_id)?.to_json())
    }

    /// The invoice as plain text ([`Invoice::render_text`]).
    pub fn invoice_text(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
    ) -> Result<String, BillingServiceError> {
        Ok(self.invoice(tenant, invoice_id)?.render_text())
    }

    /// The credit notes of one of the tenant's invoices, in issue order.
    pub fn credit_notes(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
    ) -> Result<Vec<CreditNote>, BillingServiceError> {
        let state = self.state.lock();
        Self::owned_invoice(&state, tenant, invoice_id)?;
        Ok(state
            .credit_notes
            .get(invoice_id)
            .cloned()
            .unwrap_or_default())
    }

    // ----- settings -----

    fn update_settings(
        &self,
        tenant: TenantId,
        change: impl FnOnce(&mut TenantWork, i64) -> Result<(), BillingServiceError>,
    ) -> Result<(), BillingServiceError> {
        let mut state = self.state.lock();
        let staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        change(&mut work, self.now())?;
        self.commit_work(&mut state, staging, work)
    }

    /// Sets the tenant's tax rate, in percent (`0..=100`).
    pub fn set_tax_rate(
        &self,
        tenant: TenantId,
        rate_percent: Decimal,
    ) -> Result<(), BillingServiceError> {
        if rate_percent < Decimal::ZERO || rate_percent > Decimal::ONE_HUNDRED {
            return Err(BillingServiceError::TaxRateOutOfRange { rate_percent });
        }
        self.update_settings(tenant, |work, _| {
            work.account.settings.tax_rate_percent = rate_percent;
            Ok(())
        })
    }

    /// Redeems a coupon for the tenant's next invoices.
    pub fn add_coupon(&self, tenant: TenantId, coupon: Coupon) -> Result<(), BillingServiceError> {
        let invalid = |problem| BillingServiceError::InvalidCoupon {
            coupon: coupon.id.to_string(),
            problem,
        };
        match coupon.kind {
            CouponKind::Percent { percent }
                if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED =>
            {
                return Err(invalid("percent outside (0, 100]"))
            }
            CouponKind::Amount { amount }
                if amount.currency != self.catalog.currency || !amount.is_positive() =>
            {
                return Err(invalid("amount not positive in the catalog currency"))
            }
            _ => {}
        }
        self.update_settings(tenant, |work, now| {
            let coupons = &mut work.account.settings.coupons;
            if coupons.iter().any(|r| r.coupon.id == coupon.id) {
                return Err(BillingServiceError::DuplicateCoupon {
                    tenant,
                    coupon: coupon.id.to_string(),
                });
            }
            if coupons.len() >= crate::invoice::INVOICE_COUPONS_MAX {
                return Err(invalid("too many coupons"));
            }
            coupons.push(CouponRedemption::new(coupon.clone(), now));
            Ok(())
        })
    }

    /// Adds account credit (positive, catalog currency), applied after tax
    /// on the next invoices.
    pub fn add_account_credit(
        &self,
        tenant: TenantId,
        amount: Money,
    ) -> Result<(), BillingServiceError> {
        if amount.currency != self.catalog.currency || !amount.is_positive() {
            return Err(BillingServiceError::InvalidCredit { amount });
        }
        self.update_settings(tenant, |work, _| {
            let balance = &mut work.account.settings.credit_balance_minor;
            *balance = balance
                .checked_add(amount.amount_minor)
                .ok_or(BillingServiceError::InvalidCredit { amount })?;
            Ok(())
        })
    }

    /// Sets (or removes) how automatic charges are paid.
    pub fn set_payment_method(
        &self,
        tenant: TenantId,
        method: Option<PaymentMethod>,
    ) -> Result<(), BillingServiceError> {
        self.update_settings(tenant, |work, now| {
            let has_method = method.is_some();
            work.account.settings.payment_method = method;
            if let Some(sub) = work.account.subscription.as_mut() {
                if sub.status != SubscriptionStatus::Canceled {
                    let mut event = None;
                    if has_method && !sub.has_payment_method {
                        event = Some(sub.attach_payment_method(now)?);
                    }
                    sub.has_payment_method = has_method;
                    if let Some(event) = event {
                        work.event(BillingEvent::Subscription(event));
                    }
                }
            }
            Ok(())
        })
    }

    // ----- subscriptions -----

    /// Starts a subscription. Without a trial, the first period is invoiced
    /// and charged at once.
    pub fn subscribe(
        &self,
        tenant: TenantId,
        request: SubscribeRequest,
    ) -> Result<SubscribeOutcome, BillingServiceError> {
        let plan = self.plan(&request.plan_id)?;
        self.price_minor(plan, request.interval)?;
        let mut state = self.state.lock();
        let mut staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        if work
            .account
            .subscription
            .as_ref()
            .is_some_and(|sub| sub.status != SubscriptionStatus::Canceled)
        {
            return Err(BillingServiceError::AlreadySubscribed { tenant });
        }
        if let Some(method) = request.payment_method {
            work.account.settings.payment_method = Some(method);
        }
        let now = self.now();
        let (sub, event) = Subscription::start(
            StartOptions {
                id: SubscriptionId(format!("sub_{}_{}", tenant.get(), now.div_euclid(1_000))),
                tenant: tenant_key(tenant),
                plan_id: request.plan_id.clone(),
                interval: to_interval(request.interval),
                trial_days: request.trial_days,
                has_payment_method: work.account.settings.payment_method.is_some(),
            },
            now,
        )?;
        let period = InvoicePeriod::new(
            sub.current_period_start_unix_ms,
            sub.current_period_end_unix_ms,
        )?;
        let active = sub.status == SubscriptionStatus::Active;
        work.account.subscription = Some(sub);
        work.event(BillingEvent::Subscription(event));
        let mut invoice_id = None;
        if active {
            let charges = Charges::Period {
                plan,
                interval: request.interval,
                usage_period: None,
            };
            invoice_id = self.issue(&mut work, &mut staging, period, charges, now)?;
            if let Some(id) = &invoice_id {
                self.first_charge(&mut work, id, now)?;
            }
        }
        let subscription = work.account.subscription.clone().expect("just set");
        self.commit_work(&mut state, staging, work)?;
        self.charge_committed(&mut state, tenant, now)?;
        let invoice = invoice_id.and_then(|id| state.invoices.get(&id).cloned());
        Ok(SubscribeOutcome {
            subscription,
            invoice,
        })
    }

    fn plan_change(
        &self,
        sub: &Subscription,
        new_plan_id: &str,
    ) -> Result<PlanChange, BillingServiceError> {
        let interval = to_billing_interval(sub.interval);
        let old_plan = self.plan(&sub.plan_id)?;
        let new_plan = self.plan(new_plan_id)?;
        Ok(PlanChange {
            new_plan_id: new_plan_id.to_owned(),
            old_price_minor: self.price_minor(old_plan, interval)?,
            new_price_minor: self.price_minor(new_plan, interval)?,
        })
    }

    /// The proration lines a change to `new_plan_id` now would invoice.
    pub fn preview_plan_change(
        &self,
        tenant: TenantId,
        new_plan_id: &str,
    ) -> Result<ProrationPreview, BillingServiceError> {
        let sub = self
            .subscription(tenant)
            .ok_or(BillingServiceError::NoSubscription { tenant })?;
        let change = self.plan_change(&sub, new_plan_id)?;
        Ok(preview_change(&sub, &change, self.now())?)
    }

    /// Changes the plan now; the proration lines (exactly the preview's) are
    /// invoiced and charged at once.
    pub fn change_plan(
        &self,
        tenant: TenantId,
        new_plan_id: &str,
    ) -> Result<PlanChangeOutcome, BillingServiceError> {
        let mut state = self.state.lock();
        let mut staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        let now = self.now();
        let sub = work
            .account
            .subscription
            .as_mut()
            .ok_or(BillingServiceError::NoSubscription { tenant })?;
        let change = self.plan_change(sub, new_plan_id)?;
        let (preview, event) = apply_change(sub, &change, now)?;
        let period_end = sub.current_period_end_unix_ms;
        let subscription = sub.clone();
        work.event(BillingEvent::Subscription(event));
        let lines = preview.invoice_lines(self.catalog.currency);
        let mut invoice_id = None;
        if !lines.is_empty() {
            let period = InvoicePeriod::new(preview.change_at_unix_ms, period_end)?;
            invoice_id = self.issue(&mut work, &mut staging, period, Charges::Lines(lines), now)?;
            if let Some(id) = &invoice_id {
                self.first_charge(&mut work, id, now)?;
            }
        }
        self.commit_work(&mut state, staging, work)?;
        self.charge_committed(&mut state, tenant, now)?;
        let invoice = invoice_id.and_then(|id| state.invoices.get(&id).cloned());
        Ok(PlanChangeOutcome {
            preview,
            subscription,
            invoice,
        })
    }

    /// Cancels now or at the end of the period. Canceling twice is
    /// [`SubscriptionError::IllegalTransition`](crate::subscription::SubscriptionError::IllegalTransition).
    pub fn cancel(
        &self,
        tenant: TenantId,
        mode: CancelMode,
    ) -> Result<Subscription, BillingServiceError> {
        let mut state = self.state.lock();
        let mut staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        let now = self.now();
        let sub = work
            .account
            .subscription
            .as_mut()
            .ok_or(BillingServiceError::NoSubscription { tenant })?;
        let was_paid_service = matches!(
            sub.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        let usage_start = sub.current_period_start_unix_ms;
        let plan_id = sub.plan_id.clone();
        let event = match mode {
            CancelMode::Now => sub.cancel_now(now)?,
            CancelMode::AtPeriodEnd => sub.cancel_at_period_end(now)?,
        };
        let subscription = sub.clone();
        work.event(BillingEvent::Subscription(event));
        if mode == CancelMode::Now && was_paid_service && usage_start < now {
            let plan = self.plan(&plan_id)?;
            let usage_period = InvoicePeriod::new(usage_start, now)?;
            let charges = Charges::UsageOnly { plan, usage_period };
            if let Some(id) = self.issue(&mut work, &mut staging, usage_period, charges, now)? {
                self.first_charge(&mut work, &id, now)?;
            }
        }
        self.commit_work(&mut state, staging, work)?;
        self.charge_committed(&mut state, tenant, now)?;
        Ok(subscription)
    }

    // ----- invoices and payments -----

    /// Builds, finalizes (numbering from `staging`) and records an invoice
    /// in `work`; `None` when a usage-only invoice has nothing to bill.
    fn issue(
        &self,
        work: &mut TenantWork,
        staging: &mut Staging,
        period: InvoicePeriod,
        charges: Charges<'_>,
        now: i64,
    ) -> Result<Option<InvoiceId>, BillingServiceError> {
        let currency = self.catalog.currency;
        let id = staging.next_invoice_id();
        let mut builder =
            InvoiceBuilder::for_catalog(id.clone(), tenant_key(work.tenant), &self.catalog, period);
        let mut usage_only = false;
        // Coupons discount what a period costs (base fee and usage), never a
        // plan change's proration: discounting the upgrade's charge but not
        // the downgrade's credit would let up-and-down cycles mint credit.
        let takes_coupons = !matches!(charges, Charges::Lines(_));
        let usage = |usage_period: InvoicePeriod| match &self.usage_ledger {
            Some(ledger) => billable_usage(ledger.as_ref(), &tenant_key(work.tenant), usage_period),
            None => Ok(Vec::new()),
        };
        match charges {
            Charges::Period {
                plan,
                interval,
                usage_period,
            } => {
                builder = builder.base_fee(plan, interval);
                if let Some(usage_period) = usage_period {
                    for quantity in usage(usage_period)? {
                        builder = builder.metered_usage(
                            plan,
                            quantity.metric,
                            quantity.quantity,
                            quantity.sources,
                            usage_period,
                        );
                    }
                }
            }
            Charges::UsageOnly { plan, usage_period } => {
                usage_only = true;
                for quantity in usage(usage_period)? {
                    builder = builder.metered_usage(
                        plan,
                        quantity.metric,
                        quantity.quantity,
                        quantity.sources,
                        usage_period,
                    );
                }
            }
            Charges::Lines(lines) => {
                for line in lines {
                    builder = builder.proration(line.description, line.amount, line.period);
                }
            }
        }
        let settings = &work.account.settings;
        for redemption in settings.coupons.iter().filter(|_| takes_coupons) {
            if redemption.applies_to_period(period.start_unix_ms) {
                builder = builder.coupon(redemption.clone());
            }
        }
        let mut invoice = builder
            .tax_rate_percent(settings.tax_rate_percent)
            .credit_available(Money::new(settings.credit_balance_minor.max(0), currency))
            .build()?;
        if usage_only && invoice.lines().is_empty() {
            return Ok(None);
        }
        invoice.finalize(&*staging, &self.config.invoice_prefix, self.clock.as_ref())?;
        let settings = &mut work.account.settings;
        settings.credit_balance_minor = settings
            .credit_balance_minor
            .checked_sub(invoice.credit_applied().amount_minor)
            .ok_or(crate::money::MoneyError::Overflow {
                operation: crate::money::MoneyOperation::Sub,
            })?;
        for applied in invoice.applied_coupons() {
            if let Some(redemption) = settings.coupons.iter_mut().find(|r| r.coupon.id == applied) {
                redemption.record_application();
            }
        }
        if invoice.total().is_negative() {
            // A downgrade: what is owed back becomes account credit.
            settings.credit_balance_minor = settings
                .credit_balance_minor
                .checked_sub(invoice.total().amount_minor)
                .ok_or(crate::money::MoneyError::Overflow {
                    operation: crate::money::MoneyOperation::Sub,
                })?;
        }
        let number = invoice.number().map(|n| n.to_string()).unwrap_or_default();
        work.event(BillingEvent::Invoice(InvoiceEvent {
            tenant: work.tenant,
            invoice_id: id.0.clone(),
            number: number.clone(),
            transition: InvoiceTransition::Issued,
            amount_minor: invoice.total().amount_minor,
            currency: currency.code().to_owned(),
            at_unix_ms: now,
            detail: None,
        }));
        work.invoices.insert(id.clone(), invoice);
        Ok(Some(id))
    }

    /// Marks the invoice paid in `work` and ends dunning on it.
    fn settle(
        &self,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
        reference: &str,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        let invoice = work
            .invoices
            .get_mut(invoice_id)
            .expect("settled invoices are in the work set");
        invoice.pay(reference, self.clock.as_ref())?;
        let event = InvoiceEvent {
            tenant: work.tenant,
            invoice_id: invoice_id.0.clone(),
            number: invoice.number().map(|n| n.to_string()).unwrap_or_default(),
            transition: InvoiceTransition::Paid,
            amount_minor: invoice.total().amount_minor,
            currency: invoice.currency().code().to_owned(),
            at_unix_ms: now,
            detail: Some(reference.to_owned()),
        };
        work.event(BillingEvent::Invoice(event));
        self.end_dunning(work, invoice_id, now)
    }

    /// Ends dunning of `invoice_id` (paid or voided): restore.
    fn end_dunning(
        &self,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        let Some(dunning) = work.account.dunning.as_mut() else {
            return Ok(());
        };
        if dunning.invoice_id != invoice_id.0 {
            return Ok(());
        }
        if dunning.phase == DunningPhase::Canceled {
            // Dunning gave up and canceled the subscription, and now the
            // debt that caused it is settled: the tenant owes nothing, so it
            // must not stay suspended for non-payment (its subscription stays
            // canceled; it may subscribe again).
            work.effects.push(Effect::Resume);
            return Ok(());
        }
        let open = matches!(
            dunning.phase,
            DunningPhase::Retrying | DunningPhase::Suspended
        );
        if !open {
            return Ok(());
        }
        let event = dunning.payment_succeeded(now)?;
        self.apply_dunning_event(work, event)
    }

    /// Records a dunning event and applies it to the subscription and tenant.
    fn apply_dunning_event(
        &self,
        work: &mut TenantWork,
        event: DunningEvent,
    ) -> Result<(), BillingServiceError> {
        let action = event.action;
        if let Some(sub) = work.account.subscription.as_mut() {
            let applies = match action {
                DunningAction::RetryPayment { .. } => false,
                DunningAction::Suspend => matches!(
                    sub.status,
                    SubscriptionStatus::Active | SubscriptionStatus::PastDue
                ),
                DunningAction::Cancel => sub.status != SubscriptionStatus::Canceled,
                DunningAction::Restore => matches!(
                    sub.status,
                    SubscriptionStatus::PastDue | SubscriptionStatus::Suspended
                ),
            };
            let sub_event = if applies { event.apply_to(sub)? } else { None };
            work.event(BillingEvent::Dunning(event));
            if let Some(sub_event) = sub_event {
                work.event(BillingEvent::Subscription(sub_event));
            }
        } else {
            work.event(BillingEvent::Dunning(event));
        }
        match action {
            DunningAction::Suspend => work.effects.push(Effect::Suspend),
            DunningAction::Restore => work.effects.push(Effect::Resume),
            DunningAction::RetryPayment { .. } | DunningAction::Cancel => {}
        }
        Ok(())
    }

    /// A payment of `invoice_id` failed (or could not be attempted): the
    /// subscription goes past due and dunning begins, unless it runs already.
    fn payment_failed(
        &self,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
        detail: String,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        let invoice = &work.invoices[invoice_id];
        let event = InvoiceEvent {
            tenant: work.tenant,
            invoice_id: invoice_id.0.clone(),
            number: invoice.number().map(|n| n.to_string()).unwrap_or_default(),
            transition: InvoiceTransition::PaymentFailed,
            amount_minor: invoice.amount_due().amount_minor,
            currency: invoice.currency().code().to_owned(),
            at_unix_ms: now,
            detail: Some(detail),
        };
        work.event(BillingEvent::Invoice(event));
        let dunning_open =
            work.account.dunning.as_ref().is_some_and(|d| {
                matches!(d.phase, DunningPhase::Retrying | DunningPhase::Suspended)
            });
        if dunning_open {
            return Ok(());
        }
        let Some(sub) = work.account.subscription.as_mut() else {
            return Ok(());
        };
        if !matches!(
            sub.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) {
            return Ok(());
        }
        let sub_event = sub.payment_failed(now)?;
        let dunning = DunningState::begin(
            sub.id.clone(),
            &sub.tenant,
            &invoice_id.0,
            self.config.dunning_policy.clone(),
            now,
        )?;
        work.account.dunning = Some(dunning);
        work.event(BillingEvent::Subscription(sub_event));
        Ok(())
    }

    /// Loads the invoice into `work` (it must be the tenant's).
    fn take_invoice(
        state: &State,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
    ) -> Result<(), BillingServiceError> {
        if !work.invoices.contains_key(invoice_id) {
            let invoice = Self::owned_invoice(state, work.tenant, invoice_id)?.clone();
            work.invoices.insert(invoice_id.clone(), invoice);
        }
        Ok(())
    }

    /// Charges `invoice_id` through `provider` and applies the outcome.
    /// Transient provider errors are returned.
    fn charge(
        &self,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
        provider_name: &str,
        method: PaymentMethod,
        idempotency_key: String,
        now: i64,
    ) -> Result<PaymentOutcome, BillingServiceError> {
        let provider = self.providers.get(provider_name).ok_or_else(|| {
            BillingServiceError::UnknownProvider {
                name: provider_name.to_owned(),
            }
        })?;
        let invoice = &work.invoices[invoice_id];
        // Keys live in one space per provider: scope them to the tenant so no
        // tenant can claim, collide with or learn about another's payments.
        let idempotency_key = scoped_idempotency_key(work.tenant, &idempotency_key);
        let request = ChargeRequest {
            invoice_id: invoice_id.0.clone(),
            amount_minor: invoice.amount_due().amount_minor,
            currency: invoice.currency().code().to_owned(),
            idempotency_key: idempotency_key.clone(),
            method,
        };
        let outcome = provider.charge(&request)?;
        if let Some(record) = provider.record(&idempotency_key) {
            work.payments.push(StoredPayment {
                provider: provider_name.to_owned(),
                key: idempotency_key,
                record,
            });
        }
        match &outcome {
            PaymentOutcome::Succeeded { reference } => {
                self.settle(work, invoice_id, reference, now)?
            }
            PaymentOutcome::Pending { .. } => {}
            PaymentOutcome::Declined { reason } => {
                let detail = serde_json::to_string(reason).unwrap_or_default();
                self.payment_failed(work, invoice_id, detail, now)?
            }
        }
        Ok(outcome)
    }

    /// The first automatic charge of an invoice being issued in `work`:
    /// [`Self::auto_collect`] with the provider call deferred to
    /// [`Self::charge_pending`] after the invoice is committed.
    fn first_charge(
        &self,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        self.auto_collect(work, invoice_id, 0, now, ProviderCall::AfterCommit)
    }

    /// Makes the deferred first charges of the tenant's committed invoices
    /// (key `auto-<invoice>-0`, so a retry after a crash is deduplicated by
    /// the provider) and applies their outcomes in `work`.
    fn charge_pending(
        &self,
        state: &State,
        work: &mut TenantWork,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        for invoice_id in std::mem::take(&mut work.account.pending_charges) {
            Self::take_invoice(state, work, &invoice_id)?;
            self.auto_collect(work, &invoice_id, 0, now, ProviderCall::Now)?;
        }
        Ok(())
    }

    /// [`Self::charge_pending`] for one tenant, committed on its own.
    fn charge_committed(
        &self,
        state: &mut MutexGuard<'_, State>,
        tenant: TenantId,
        now: i64,
    ) -> Result<(), BillingServiceError> {
        let pending = state
            .accounts
            .get(&tenant)
            .is_some_and(|account| !account.pending_charges.is_empty());
        if !pending {
            return Ok(());
        }
        let mut work = Self::work(state, tenant);
        self.charge_pending(state, &mut work, now)?;
        let staging = Staging::new(state);
        self.commit_work(state, staging, work)
    }

    /// The automatic charge of a new invoice (`attempt` 0) or a dunning
    /// retry: settles invoices with nothing due, charges the payment method
    /// through the auto-charge provider (or, with
    /// [`ProviderCall::AfterCommit`], marks the invoice to be charged after
    /// its commit), and treats "no method", "no provider" and transient
    /// errors as a failed payment.
    fn auto_collect(
        &self,
        work: &mut TenantWork,
        invoice_id: &InvoiceId,
        attempt: u32,
        now: i64,
        call: ProviderCall,
    ) -> Result<(), BillingServiceError> {
        let invoice = &work.invoices[invoice_id];
        if invoice.status() != InvoiceStatus::Finalized {
            return Ok(());
        }
        if !invoice.amount_due().is_positive() {
            return self.settle(work, invoice_id, NOTHING_DUE_REFERENCE, now);
        }
        let method = work.account.settings.payment_method.clone();
        let (Some(method), Some(provider)) = (method, self.auto_charge_provider.clone()) else {
            return self.payment_failed(work, invoice_id, "no payment method".into(), now);
        };
        if call == ProviderCall::AfterCommit {
            work.account.pending_charges.push(invoice_id.clone());
            return Ok(());
        }
        let key = match attempt {
            0 => format!("{AUTO_CHARGE_KEY_PREFIX}{invoice_id}-0"),
            n => format!("{AUTO_CHARGE_KEY_PREFIX}{invoice_id}-retry-{n}"),
        };
        match self.charge(work, invoice_id, &provider, method, key, now) {
            Ok(_) => Ok(()),
            Err(BillingServiceError::Payment(e)) => {
                self.payment_failed(work, invoice_id, e.to_string(), now)
            }
            Err(e) => Err(e),
        }
    }

    /// Pays one of the tenant's invoices. The same idempotency key never
    /// charges twice, across restarts too: repeating a request returns the
    /// stored outcome. A decline starts dunning (if not running already).
    pub fn pay_invoice(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
        request: PayInvoiceRequest,
    ) -> Result<PaymentAttempt, BillingServiceError> {
        if request.idempotency_key.starts_with(AUTO_CHARGE_KEY_PREFIX) {
            return Err(BillingServiceError::ReservedIdempotencyKey {
                key: request.idempotency_key,
            });
        }
        let mut state = self.state.lock();
        let staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        Self::take_invoice(&state, &mut work, invoice_id)?;
        let invoice = work.invoices[invoice_id].clone();
        let provider = self.providers.get(&request.provider).ok_or_else(|| {
            BillingServiceError::UnknownProvider {
                name: request.provider.clone(),
            }
        })?;
        if invoice.status() != InvoiceStatus::Finalized {
            // A repeated request for an invoice its key already paid.
            let scoped = scoped_idempotency_key(tenant, &request.idempotency_key);
            if let Some(record) = provider.record(&scoped) {
                if record.invoice_id == invoice_id.0 {
                    return Ok(PaymentAttempt {
                        outcome: record.outcome,
                        invoice,
                    });
                }
            }
            return Err(BillingServiceError::InvoiceNotPayable {
                invoice_id: invoice_id.clone(),
                status: invoice.status(),
            });
        }
        let now = self.now();
        let outcome = self.charge(
            &mut work,
            invoice_id,
            &request.provider,
            request.method,
            request.idempotency_key,
            now,
        )?;
        let invoice = work.invoices[invoice_id].clone();
        self.commit_work(&mut state, staging, work)?;
        Ok(PaymentAttempt { outcome, invoice })
    }

    /// Records a payment received outside any provider (operator action).
    pub fn mark_paid(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
        reference: &str,
    ) -> Result<Invoice, BillingServiceError> {
        let mut state = self.state.lock();
        let staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        Self::take_invoice(&state, &mut work, invoice_id)?;
        self.settle(&mut work, invoice_id, reference, self.now())?;
        let invoice = work.invoices[invoice_id].clone();
        self.commit_work(&mut state, staging, work)?;
        Ok(invoice)
    }

    /// Voids a finalized, unpaid invoice (operator action); dunning on it ends.
    pub fn void_invoice(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
        reason: &str,
    ) -> Result<Invoice, BillingServiceError> {
        let mut state = self.state.lock();
        let staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        Self::take_invoice(&state, &mut work, invoice_id)?;
        let now = self.now();
        let invoice = work.invoices.get_mut(invoice_id).expect("just taken");
        invoice.void(reason, self.clock.as_ref())?;
        let event = InvoiceEvent {
            tenant,
            invoice_id: invoice_id.0.clone(),
            number: invoice.number().map(|n| n.to_string()).unwrap_or_default(),
            transition: InvoiceTransition::Voided,
            amount_minor: invoice.total().amount_minor,
            currency: invoice.currency().code().to_owned(),
            at_unix_ms: now,
            detail: Some(reason.to_owned()),
        };
        let invoice = invoice.clone();
        work.event(BillingEvent::Invoice(event));
        self.end_dunning(&mut work, invoice_id, now)?;
        self.commit_work(&mut state, staging, work)?;
        Ok(invoice)
    }

    /// Issues a credit note against one of the tenant's finalized or paid
    /// invoices; the credited amount becomes account credit.
    pub fn issue_credit_note(
        &self,
        tenant: TenantId,
        invoice_id: &InvoiceId,
        request: CreditNoteRequest,
    ) -> Result<CreditNote, BillingServiceError> {
        let mut state = self.state.lock();
        let staging = Staging::new(&state);
        let mut work = Self::work(&state, tenant);
        let invoice = Self::owned_invoice(&state, tenant, invoice_id)?;
        let previous = state
            .credit_notes
            .get(invoice_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let note = CreditNote::issue(
            invoice,
            previous,
            request,
            &staging,
            &self.config.credit_note_prefix,
            self.clock.as_ref(),
        )?;
        let balance = &mut work.account.settings.credit_balance_minor;
        *balance = balance
            .checked_add(note.total.amount_minor)
            .ok_or(BillingServiceError::InvalidCredit { amount: note.total })?;
        work.event(BillingEvent::Invoice(InvoiceEvent {
            tenant,
            invoice_id: invoice_id.0.clone(),
            number: note.number.to_string(),
            transition: InvoiceTransition::Credited,
            amount_minor: note.total.amount_minor,
            currency: note.currency.code().to_owned(),
            at_unix_ms: note.issued_at_unix_ms,
            detail: Some(note.memo.clone()).filter(|memo| !memo.is_empty()),
        }));
        work.notes.push(note.clone());
        self.commit_work(&mut state, staging, work)?;
        Ok(note)
    }
}

/// Idempotency keys starting with this are the billing run's own (automatic
/// charges and dunning retries); callers of `pay_invoice` may not use them.
pub const AUTO_CHARGE_KEY_PREFIX: &str = "auto-";

/// The key a provider sees: the caller's key inside the tenant's own space.
fn scoped_idempotency_key(tenant: TenantId, key: &str) -> String {
    format!("t{tenant}/{key}")
}
