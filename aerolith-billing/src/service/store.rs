//! The billing service's persistence: the `billing.*` collections of the
//! caller's Aerolith database, the document shapes, loading everything on
//! open, and [`Changes`], the set of documents one operation commits in a
//! single `WriteBatch`.
//!
//! Collections (one document per key; the domain value is stored as JSON
//! text under `"value"`, because a billing run writes thousands of invoices
//! per batch and one string is several times cheaper to build, encode and
//! drop than a tree of JSON nodes; fields worth querying, like an invoice's
//! `tenant`, `number` and `status`, sit beside it, and so does
//! `charge_pending: true` on an invoice committed before its first
//! automatic charge):
//!
//! | collection                 | `_id`                        | value |
//! |----------------------------|------------------------------|-------|
//! | `billing.subscriptions`    | tenant id                    | `Subscription` (or null) |
//! | `billing.tenant_settings`  | tenant id                    | tax rate, account credit, coupons, payment method |
//! | `billing.dunning`          | tenant id                    | `DunningState` (or null) |
//! | `billing.invoices`         | invoice id (`tenant` indexed)| `Invoice` |
//! | `billing.credit_notes`     | credit-note number           | `CreditNote` |
//! | `billing.number_sequences` | `PREFIX-YYYY`, `invoice_ids` | last number taken |
//! | `billing.payments`         | blake3(provider, key) hex    | provider, key, `IdempotencyRecord` |
//!
//! **Invariant:** an invoice's number and its series counter are written in
//! the same batch as the finalized invoice, so after any crash the stored
//! numbers of a series are exactly `1..=counter` (checked on open).

use std::collections::{BTreeMap, HashMap};

use aerolith_core::{Database, Error as CoreError, Query, WriteBatch};
use aerolith_tenancy::TenantId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::BillingServiceError;
use crate::dunning::DunningState;
use crate::invoice::{CouponRedemption, CreditNote, Invoice, InvoiceId, InvoicePrefix};
use crate::payment::{IdempotencyRecord, PaymentMethod};
use crate::subscription::Subscription;
use rust_decimal::Decimal;

/// Subscriptions, one per tenant.
pub const SUBSCRIPTIONS: &str = "billing.subscriptions";
/// Per-tenant settings.
pub const TENANT_SETTINGS: &str = "billing.tenant_settings";
/// Dunning state, one per tenant.
pub const DUNNING: &str = "billing.dunning";
/// Invoices.
pub const INVOICES: &str = "billing.invoices";
/// Credit notes.
pub const CREDIT_NOTES: &str = "billing.credit_notes";
/// Number series counters and the invoice id counter.
pub const NUMBER_SEQUENCES: &str = "billing.number_sequences";
/// Payment idempotency records.
pub const PAYMENTS: &str = "billing.payments";
const ALL_COLLECTIONS: [&str; 7] = [
    SUBSCRIPTIONS,
    TENANT_SETTINGS,
    DUNNING,
    INVOICES,
    CREDIT_NOTES,
    NUMBER_SEQUENCES,
    PAYMENTS,
];

const INVOICE_IDS_DOC: &str = "invoice_ids";

/// Field of an invoice document whose first automatic charge is pending
/// (committed, not yet charged, or charged without its outcome committed).
const CHARGE_PENDING_FIELD: &str = "charge_pending";

/// A tenant's billing settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantBillingSettings {
    /// Tax rate in percent applied to every invoice.
    pub tax_rate_percent: Decimal,
    /// Account credit, in minor units of the catalog currency, applied after
    /// tax on the next invoices.
    pub credit_balance_minor: i64,
    /// Coupons redeemed.
    pub coupons: Vec<CouponRedemption>,
    /// How automatic charges are paid; none means invoices wait for a manual
    /// payment.
    pub payment_method: Option<PaymentMethod>,
}

/// Everything billing keeps about one tenant besides its invoices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Account {
    pub subscription: Option<Subscription>,
    pub settings: TenantBillingSettings,
    pub dunning: Option<DunningState>,
    /// Invoices whose first automatic charge waits for (or follows) their
    /// commit. Stored as `"charge_pending": true` on the invoice document,
    /// not as a document of its own: the invoice is written anyway.
    pub pending_charges: Vec<InvoiceId>,
}

/// A payment idempotency record with its provider and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredPayment {
    pub provider: String,
    pub key: String,
    pub record: IdempotencyRecord,
}

/// The in-memory mirror of the collections.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub accounts: HashMap<TenantId, Account>,
    pub invoices: HashMap<InvoiceId, Invoice>,
    pub invoices_by_tenant: HashMap<TenantId, Vec<InvoiceId>>,
    pub credit_notes: HashMap<InvoiceId, Vec<CreditNote>>,
    pub numbers: HashMap<(InvoicePrefix, i32), u64>,
    pub invoice_ids_issued: u64,
    pub payments: Vec<StoredPayment>,
}

/// Which parts of an account changed (only those are written).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccountDirty {
    pub subscription: bool,
    pub settings: bool,
    pub dunning: bool,
    /// In-memory only: the mark travels with the invoice documents.
    pub pending_charges: bool,
}

impl AccountDirty {
    pub fn between(before: &Account, after: &Account) -> AccountDirty {
        AccountDirty {
            subscription: before.subscription != after.subscription,
            settings: before.settings != after.settings,
            dunning: before.dunning != after.dunning,
            pending_charges: before.pending_charges != after.pending_charges,
        }
    }
    pub fn any(self) -> bool {
        self.subscription || self.settings || self.dunning || self.pending_charges
    }
}

/// Documents one operation commits together.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub accounts: BTreeMap<TenantId, (Account, AccountDirty)>,
    /// Invoices with their tenant and their pending-charge mark.
    pub invoices: Vec<(TenantId, Invoice, bool)>,
    pub credit_notes: Vec<(TenantId, CreditNote)>,
    pub numbers: HashMap<(InvoicePrefix, i32), u64>,
    pub invoice_ids_issued: Option<u64>,
    pub payments: Vec<StoredPayment>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.invoices.is_empty()
            && self.credit_notes.is_empty()
            && self.numbers.is_empty()
            && self.invoice_ids_issued.is_none()
            && self.payments.is_empty()
    }
}

/// A document holding `value` as JSON text (see the module docs for why).
fn wrap<T: Serialize>(id: &str, extra: &[(&str, Value)], value: &T) -> Value {
    let text = serde_json::to_string(value).expect("billing values serialize");
    let mut doc = json!({ "_id": id, "value": text });
    for (key, field) in extra {
        doc[*key] = field.clone();
    }
    doc
}

fn payment_doc_id(provider: &str, key: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(provider.as_bytes());
    hasher.update(&[0]);
    hasher.update(key.as_bytes());
    hasher.finalize().to_hex().to_string()
}

fn series_id(prefix: &InvoicePrefix, year: i32) -> String {
    format!("{prefix}-{year:04}")
}

/// Creates the collections and the tenant index if missing.
pub(crate) fn ensure_collections(db: &Database) -> Result<(), BillingServiceError> {
    for name in ALL_COLLECTIONS {
        match db.create_collection(name) {
            Ok(()) | Err(CoreError::CollectionExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match db.create_index(INVOICES, "tenant", false) {
        Ok(()) | Err(CoreError::IndexExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Encodes `changes` into one batch.
pub(crate) fn to_batch(changes: &Changes) -> Result<WriteBatch, BillingServiceError> {
    let mut batch = WriteBatch::new();
    for (tenant, (account, dirty)) in &changes.accounts {
        let id = tenant.get().to_string();
        if dirty.subscription {
            batch.upsert(SUBSCRIPTIONS, wrap(&id, &[], &account.subscription))?;
        }
        if dirty.settings {
            batch.upsert(TENANT_SETTINGS, wrap(&id, &[], &account.settings))?;
        }
        if dirty.dunning {
            batch.upsert(DUNNING, wrap(&id, &[], &account.dunning))?;
        }
    }
    for (tenant, invoice, charge_pending) in &changes.invoices {
        let mut fields = vec![
            ("tenant", json!(tenant.get().to_string())),
            ("number", json!(invoice.number().map(ToString::to_string))),
            ("status", json!(invoice.status())),
        ];
        if *charge_pending {
            fields.push((CHARGE_PENDING_FIELD, json!(true)));
        }
        batch.upsert(INVOICES, wrap(&invoice.id().0, &fields, invoice))?;
    }
    for (tenant, note) in &changes.credit_notes {
        let tenant_field = [("tenant", json!(tenant.get().to_string()))];
        batch.upsert(
            CREDIT_NOTES,
            wrap(&note.number.to_string(), &tenant_field, note),
        )?;
    }
    for ((prefix, year), last) in &changes.numbers {
        batch.upsert(
            NUMBER_SEQUENCES,
            json!({"_id": series_id(prefix, *year), "prefix": prefix.as_str(), "year": year, "last": last}),
        )?;
    }
    if let Some(last) = changes.invoice_ids_issued {
        batch.upsert(
            NUMBER_SEQUENCES,
            json!({"_id": INVOICE_IDS_DOC, "last": last}),
        )?;
    }
    for payment in &changes.payments {
        let id = payment_doc_id(&payment.provider, &payment.key);
        batch.upsert(PAYMENTS, wrap(&id, &[], payment))?;
    }
    Ok(batch)
}

/// Applies committed `changes` to the in-memory mirror.
pub(crate) fn apply(state: &mut State, changes: Changes) {
    for (tenant, (account, _)) in changes.accounts {
        state.accounts.insert(tenant, account);
    }
    for (tenant, invoice, _) in changes.invoices {
        let id = invoice.id().clone();
        if state.invoices.insert(id.clone(), invoice).is_none() {
            state.invoices_by_tenant.entry(tenant).or_default().push(id);
        }
    }
    for (_, note) in changes.credit_notes {
        state
            .credit_notes
            .entry(note.invoice_id.clone())
            .or_default()
            .push(note);
    }
    state.numbers.extend(changes.numbers);
    if let Some(last) = changes.invoice_ids_issued {
        state.invoice_ids_issued = last;
    }
    state.payments.extend(changes.payments);
}

fn all_docs(db: &Database, collection: &'static str) -> Result<Vec<Value>, BillingServiceError> {
    let query = Query::filter(&json!({}))?;
    Ok(db.find(collection, &query)?)
}

fn doc_id(doc: &Value) -> String {
    doc["_id"].as_str().unwrap_or_default().to_owned()
}

fn value_of<T: DeserializeOwned>(
    collection: &'static str,
    doc: &Value,
) -> Result<T, BillingServiceError> {
    let corrupt = |detail: String| BillingServiceError::Corrupt {
        collection,
        id: doc_id(doc),
        detail,
    };
    let text = doc["value"]
        .as_str()
        .ok_or_else(|| corrupt("no value text".into()))?;
    serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))
}

fn tenant_of(
    collection: &'static str,
    doc: &Value,
    field: Option<&str>,
) -> Result<TenantId, BillingServiceError> {
    let text = match field {
        Some(field) => doc[field].as_str().unwrap_or_default().to_owned(),
        None => doc_id(doc),
    };
    text.parse::<u64>()
        .map(TenantId::new)
        .map_err(|_| BillingServiceError::Corrupt {
            collection,
            id: doc_id(doc),
            detail: format!("{text:?} is not a tenant id"),
        })
}

/// Reads every collection back into a [`State`] and checks the numbering
/// invariant.
pub(crate) fn load(db: &Database) -> Result<State, BillingServiceError> {
    let mut state = State::default();
    for doc in all_docs(db, SUBSCRIPTIONS)? {
        let tenant = tenant_of(SUBSCRIPTIONS, &doc, None)?;
        state.accounts.entry(tenant).or_default().subscription = value_of(SUBSCRIPTIONS, &doc)?;
    }
    for doc in all_docs(db, TENANT_SETTINGS)? {
        let tenant = tenant_of(TENANT_SETTINGS, &doc, None)?;
        state.accounts.entry(tenant).or_default().settings = value_of(TENANT_SETTINGS, &doc)?;
    }
    for doc in all_docs(db, DUNNING)? {
        let tenant = tenant_of(DUNNING, &doc, None)?;
        state.accounts.entry(tenant).or_default().dunning = value_of(DUNNING, &doc)?;
    }
    for doc in all_docs(db, INVOICES)? {
        let tenant = tenant_of(INVOICES, &doc, Some("tenant"))?;
        let invoice: Invoice = value_of(INVOICES, &doc)?;
        if doc[CHARGE_PENDING_FIELD].as_bool() == Some(true) {
            let account = state.accounts.entry(tenant).or_default();
            account.pending_charges.push(invoice.id().clone());
            account.pending_charges.sort_unstable();
        }
        state
            .invoices_by_tenant
            .entry(tenant)
            .or_default()
            .push(invoice.id().clone());
        state.invoices.insert(invoice.id().clone(), invoice);
    }
    for ids in state.invoices_by_tenant.values_mut() {
        ids.sort_by(|a, b| {
            let key = |id: &InvoiceId| {
                let number = state.invoices[id].number().cloned();
                (number, id.clone())
            };
            key(a).cmp(&key(b))
        });
    }
    for doc in all_docs(db, CREDIT_NOTES)? {
        let note: CreditNote = value_of(CREDIT_NOTES, &doc)?;
        state
            .credit_notes
            .entry(note.invoice_id.clone())
            .or_default()
            .push(note);
    }
    for notes in state.credit_notes.values_mut() {
        notes.sort_by(|a, b| a.number.cmp(&b.number));
    }
    for doc in all_docs(db, NUMBER_SEQUENCES)? {
        let last = doc["last"]
            .as_u64()
            .ok_or_else(|| BillingServiceError::Corrupt {
                collection: NUMBER_SEQUENCES,
                id: doc_id(&doc),
                detail: "no counter".into(),
            })?;
        if doc_id(&doc) == INVOICE_IDS_DOC {
            state.invoice_ids_issued = last;
            continue;
        }
        let prefix = doc["prefix"]
            .as_str()
            .and_then(|p| InvoicePrefix::new(p).ok());
        let year = doc["year"].as_i64().and_then(|y| i32::try_from(y).ok());
        match (prefix, year) {
            (Some(prefix), Some(year)) => {
                state.numbers.insert((prefix, year), last);
            }
            _ => {
                return Err(BillingServiceError::Corrupt {
                    collection: NUMBER_SEQUENCES,
                    id: doc_id(&doc),
                    detail: "bad prefix or year".into(),
                })
            }
        }
    }
    for doc in all_docs(db, PAYMENTS)? {
        state.payments.push(value_of(PAYMENTS, &doc)?);
    }
    check_numbering(&state)?;
    Ok(state)
}

/// Every series' stored numbers (invoices and credit notes) are exactly
/// `1..=counter`.
pub(crate) fn check_numbering(state: &State) -> Result<(), BillingServiceError> {
    let mut taken: HashMap<(InvoicePrefix, i32), Vec<u64>> = HashMap::new();
    let numbers = state
        .invoices
        .values()
        .filter_map(|invoice| invoice.number())
        .chain(
            state
                .credit_notes
                .values()
                .flatten()
                .map(|note| &note.number),
        );
    for number in numbers {
        taken
            .entry((number.prefix().clone(), number.year()))
            .or_default()
            .push(number.sequence());
    }
    for ((prefix, year), counter) in &state.numbers {
        let mut sequences = taken.remove(&(prefix.clone(), *year)).unwrap_or_default();
        sequences.sort_unstable();
        let consecutive = sequences
            .iter()
            .enumerate()
            .take_while(|(index, sequence)| **sequence == *index as u64 + 1)
            .count() as u64;
        if consecutive != *counter || sequences.len() as u64 != *counter {
            return Err(BillingServiceError::NumberingGap {
                series: series_id(prefix, *year),
                counter: *counter,
                stored: consecutive,
            });
        }
    }
    if let Some(((prefix, year), sequences)) = taken.into_iter().next() {
        return Err(BillingServiceError::NumberingGap {
            series: series_id(&prefix, year),
            counter: 0,
            stored: sequences.len() as u64,
        });
    }
    Ok(())
}
