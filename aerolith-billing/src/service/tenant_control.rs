//! How billing acts on tenants: [`TenantControl`] suspends a tenant for
//! non-payment, resumes it, and appends billing events to its audit chain.
//!
//! The service calls it after its own state is committed, so a tenancy
//! failure never leaves billing half-written; it is reported instead (in the
//! error of the operation, or in the run report). The impl for
//! [`Tenancy`] acts with operator authority: suspension uses
//! [`SuspensionReason::NonPayment`], and resuming only lifts a non-payment
//! suspension (an operator's suspension for abuse stays).
//! [`InMemoryTenantControl`] records the calls, for tests, examples and
//! benchmarks that run billing without a tenancy registry.

use std::fmt;

use aerolith_tenancy::{
    BillingAuditKind, Principal, SuspensionReason, Tenancy, TenancyError, TenantId, TenantStatus,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::dunning::DunningEvent;
use crate::subscription::SubscriptionEvent;

/// Why a tenant could not be suspended, resumed or audited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantControlError {
    /// Tenancy refused or failed.
    #[error("tenant {tenant}: {source}")]
    Tenancy {
        /// The tenant.
        tenant: TenantId,
        /// Tenancy's error.
        #[source]
        source: TenancyError,
    },
}

/// An invoice transition, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceTransition {
    /// Finalized with a number.
    Issued,
    /// Paid (by a provider, by account credit, or marked paid by the operator).
    Paid,
    /// A payment attempt was declined or could not be made.
    PaymentFailed,
    /// Voided.
    Voided,
    /// A credit note was issued against it.
    Credited,
}

/// An invoice event, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceEvent {
    /// The tenant billed.
    pub tenant: TenantId,
    /// The invoice.
    pub invoice_id: String,
    /// Its number (or the credit note's, for `Credited`).
    pub number: String,
    /// What happened.
    pub transition: InvoiceTransition,
    /// The amount concerned, in minor units (total, amount paid or credited).
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// When.
    pub at_unix_ms: i64,
    /// A payment reference or reason, when there is one.
    pub detail: Option<String>,
}

/// Every billing transition the service records in tenants' audit chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BillingEvent {
    /// A subscription transition.
    Subscription(SubscriptionEvent),
    /// A dunning transition.
    Dunning(DunningEvent),
    /// An invoice transition.
    Invoice(InvoiceEvent),
}

impl BillingEvent {
    /// The audit kind.
    pub fn kind(&self) -> BillingAuditKind {
        match self {
            BillingEvent::Subscription(_) => BillingAuditKind::Subscription,
            BillingEvent::Dunning(_) => BillingAuditKind::Dunning,
            BillingEvent::Invoice(_) => BillingAuditKind::Invoice,
        }
    }
}

impl fmt::Display for BillingEvent {
    /// A one-line description, used as the audit entry's target.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BillingEvent::Subscription(e) => write!(
                f,
                "subscription {} {:?} -> {:?}: {}",
                e.subscription_id.0,
                e.from,
                e.to,
                serde_json::to_string(&e.kind).unwrap_or_default()
            ),
            BillingEvent::Dunning(e) => write!(
                f,
                "dunning of invoice {} {:?} -> {:?}: {}",
                e.invoice_id,
                e.from,
                e.to,
                serde_json::to_string(&e.action).unwrap_or_default()
            ),
            BillingEvent::Invoice(e) => {
                write!(
                    f,
                    "invoice {} ({}) {:?}: {} {}",
                    e.invoice_id, e.number, e.transition, e.amount_minor, e.currency
                )?;
                match &e.detail {
                    Some(detail) => write!(f, " ({detail})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// What billing needs from tenancy.
pub trait TenantControl: Send + Sync {
    /// Makes the tenant read-only because an invoice stayed unpaid.
    fn suspend_for_nonpayment(&self, tenant: TenantId) -> Result<(), TenantControlError>;
    /// Lifts a non-payment suspension (and nothing else).
    fn resume(&self, tenant: TenantId) -> Result<(), TenantControlError>;
    /// Appends a billing event to the tenant's audit chain.
    fn audit(&self, tenant: TenantId, event: &BillingEvent) -> Result<(), TenantControlError>;
}

/// Longest audit target written, in bytes (tenancy's limit).
const TARGET_BYTES_MAX: usize = aerolith_tenancy::AUDIT_TARGET_BYTES_MAX;

fn audit_target(event: &BillingEvent) -> String {
    let mut target = event.to_string();
    if target.len() > TARGET_BYTES_MAX {
        let mut end = TARGET_BYTES_MAX;
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        target.truncate(end);
    }
    target
}

impl TenantControl for Tenancy {
    fn suspend_for_nonpayment(&self, tenant: TenantId) -> Result<(), TenantControlError> {
        let error = |source| TenantControlError::Tenancy { tenant, source };
        let current = self
            .get_tenant(&Principal::Operator, tenant)
            .map_err(error)?;
        if matches!(current.status, TenantStatus::Suspended { .. }) {
            // Already read-only (by the operator or an earlier run).
            return Ok(());
        }
        self.suspend_tenant(&Principal::Operator, tenant, SuspensionReason::NonPayment)
            .map_err(error)?;
        Ok(())
    }

    fn resume(&self, tenant: TenantId) -> Result<(), TenantControlError> {
        let error = |source| TenantControlError::Tenancy { tenant, source };
        let current = self
            .get_tenant(&Principal::Operator, tenant)
            .map_err(error)?;
        if current.status
            == (TenantStatus::Suspended {
                reason: SuspensionReason::NonPayment,
            })
        {
            self.resume_tenant(&Principal::Operator, tenant)
                .map_err(error)?;
        }
        Ok(())
    }

    fn audit(&self, tenant: TenantId, event: &BillingEvent) -> Result<(), TenantControlError> {
        self.audit_billing_event(
            &Principal::Operator,
            tenant,
            event.kind(),
            audit_target(event),
        )
        .map_err(|source| TenantControlError::Tenancy { tenant, source })
    }
}

/// One call [`InMemoryTenantControl`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantControlCall {
    /// `suspend_for_nonpayment`.
    Suspend(TenantId),
    /// `resume`.
    Resume(TenantId),
    /// `audit`.
    Audit(TenantId, BillingEvent),
}

/// A [`TenantControl`] that records its calls in memory and tracks which
/// tenants are suspended (for tests, examples and benchmarks).
#[derive(Debug, Default)]
pub struct InMemoryTenantControl {
    calls: Mutex<Vec<TenantControlCall>>,
    suspended: Mutex<std::collections::BTreeSet<TenantId>>,
}

impl InMemoryTenantControl {
    /// No calls yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<TenantControlCall> {
        self.calls.lock().clone()
    }
    /// Whether the tenant is currently suspended for non-payment.
    pub fn is_suspended(&self, tenant: TenantId) -> bool {
        self.suspended.lock().contains(&tenant)
    }
}

impl TenantControl for InMemoryTenantControl {
    fn suspend_for_nonpayment(&self, tenant: TenantId) -> Result<(), TenantControlError> {
        self.suspended.lock().insert(tenant);
        self.calls.lock().push(TenantControlCall::Suspend(tenant));
        Ok(())
    }
    fn resume(&self, tenant: TenantId) -> Result<(), TenantControlError> {
        self.suspended.lock().remove(&tenant);
        self.calls.lock().push(TenantControlCall::Resume(tenant));
        Ok(())
    }
    fn audit(&self, tenant: TenantId, event: &BillingEvent) -> Result<(), TenantControlError> {
        self.calls
            .lock()
            .push(TenantControlCall::Audit(tenant, event.clone()));
        Ok(())
    }
}
