//! Where invoices and credit notes are kept, with their state changes atomic.
//!
//! [`InvoiceStore`] is the persistence seam: the storage engine is not ready,
//! so [`InMemoryInvoiceStore`] keeps everything in memory behind one mutex.
//! The store makes two things atomic that the plain types cannot:
//!
//! - a state change and its storage: [`InvoiceStore::update`] runs the change
//!   (finalize, pay, void, edit) on the stored invoice under the store's lock
//!   and keeps the result only if the change succeeded, so a finalized
//!   invoice is never lost after its number was taken;
//! - the credit-note limit: [`InvoiceStore::issue_credit_note`] reads the
//!   previous credit notes, checks the limit and stores the new note under
//!   the same lock, so concurrent credit notes can never together exceed the
//!   invoice total.
//!
//! A persistent implementation must give the same guarantees (one atomic
//! commit per call, including the number sequence's counter).

use std::collections::HashMap;

use parking_lot::Mutex;

use super::credit_note::{CreditNote, CreditNoteError};
use super::{Invoice, InvoiceError, InvoiceId, InvoiceStatus};

/// Most invoices the in-memory store holds; a bound so that a runaway caller
/// fails loudly instead of exhausting memory.
pub const IN_MEMORY_INVOICES_MAX: usize = 1_000_000;

/// The step of [`InvoiceStore::issue_credit_note`] that issues the note,
/// given the invoice and its previous credit notes (usually a call of
/// [`CreditNote::issue`]).
pub type IssueCreditNote<'a> =
    dyn FnMut(&Invoice, &[CreditNote]) -> Result<CreditNote, CreditNoteError> + 'a;

/// Errors of an invoice store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvoiceStoreError {
    /// No invoice with this id is stored.
    #[error("no invoice {id}")]
    NotFound {
        /// The id asked for.
        id: InvoiceId,
    },
    /// A stored invoice that is no longer a draft cannot be replaced.
    #[error("invoice {id} is {status} and cannot be replaced")]
    NotADraft {
        /// The invoice.
        id: InvoiceId,
        /// Its stored status.
        status: InvoiceStatus,
    },
    /// Only drafts are saved with `save_draft`; other states come from `update`.
    #[error("invoice {id} is {status}; only drafts can be saved directly")]
    SaveNonDraft {
        /// The invoice.
        id: InvoiceId,
        /// Its status.
        status: InvoiceStatus,
    },
    /// The store is full.
    #[error("the store holds its maximum of {max} invoices")]
    Full {
        /// The maximum.
        max: usize,
    },
    /// The change applied by `update` failed; nothing was stored.
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    /// Issuing the credit note failed; nothing was stored.
    #[error(transparent)]
    CreditNote(#[from] CreditNoteError),
}

/// Storage of invoices and their credit notes; see the module docs for the
/// atomicity each method promises.
pub trait InvoiceStore: Send + Sync {
    /// Stores a new draft, or replaces a stored invoice that is still a draft.
    fn save_draft(&self, invoice: &Invoice) -> Result<(), InvoiceStoreError>;

    /// Applies `change` to the stored invoice atomically and returns the
    /// stored result; on error nothing changes.
    fn update(
        &self,
        id: &InvoiceId,
        change: &mut dyn FnMut(&mut Invoice) -> Result<(), InvoiceError>,
    ) -> Result<Invoice, InvoiceStoreError>;

    /// The stored invoice.
    fn get(&self, id: &InvoiceId) -> Option<Invoice>;

    /// The tenant's invoices, ordered by period start, then id.
    fn invoices_of_tenant(&self, tenant: &str) -> Vec<Invoice>;

    /// Issues and stores a credit note against the stored invoice: `issue`
    /// receives the invoice and its previous credit notes, under the lock.
    fn issue_credit_note(
        &self,
        invoice: &InvoiceId,
        issue: &mut IssueCreditNote<'_>,
    ) -> Result<CreditNote, InvoiceStoreError>;

    /// The credit notes of an invoice, in issue order.
    fn credit_notes_of(&self, invoice: &InvoiceId) -> Vec<CreditNote>;
}

#[derive(Debug, Default)]
struct StoredInvoices {
    invoices: HashMap<InvoiceId, Invoice>,
    credit_notes: HashMap<InvoiceId, Vec<CreditNote>>,
}

/// An [`InvoiceStore`] in memory (lost on restart).
#[derive(Debug, Default)]
pub struct InMemoryInvoiceStore {
    state: Mutex<StoredInvoices>,
}

impl InMemoryInvoiceStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl InvoiceStore for InMemoryInvoiceStore {
    fn save_draft(&self, invoice: &Invoice) -> Result<(), InvoiceStoreError> {
        if invoice.status() != InvoiceStatus::Draft {
            return Err(InvoiceStoreError::SaveNonDraft {
                id: invoice.id().clone(),
                status: invoice.status(),
            });
        }
        let mut state = self.state.lock();
        match state.invoices.get(invoice.id()) {
            Some(stored) if stored.status() != InvoiceStatus::Draft => {
                return Err(InvoiceStoreError::NotADraft {
                    id: invoice.id().clone(),
                    status: stored.status(),
                })
            }
            Some(_) => {}
            None if state.invoices.len() >= IN_MEMORY_INVOICES_MAX => {
                return Err(InvoiceStoreError::Full {
                    max: IN_MEMORY_INVOICES_MAX,
                })
            }
            None => {}
        }
        state.invoices.insert(invoice.id().clone(), invoice.clone());
        Ok(())
    }

    fn update(
        &self,
        id: &InvoiceId,
        change: &mut dyn FnMut(&mut Invoice) -> Result<(), InvoiceError>,
    ) -> Result<Invoice, InvoiceStoreError> {
        let mut state = self.state.lock();
        let stored = state
            .invoices
            .get_mut(id)
            .ok_or_else(|| InvoiceStoreError::NotFound { id: id.clone() })?;
        let mut changed = stored.clone();
        change(&mut changed)?;
        *stored = changed.clone();
        Ok(changed)
    }

    fn get(&self, id: &InvoiceId) -> Option<Invoice> {
        self.state.lock().invoices.get(id).cloned()
    }

    fn invoices_of_tenant(&self, tenant: &str) -> Vec<Invoice> {
        let mut invoices: Vec<Invoice> = self
            .state
            .lock()
            .invoices
            .values()
            .filter(|invoice| invoice.tenant() == tenant)
            .cloned()
            .collect();
        invoices.sort_by(|a, b| {
            (a.period_start_unix_ms(), a.id()).cmp(&(b.period_start_unix_ms(), b.id()))
        });
        invoices
    }

    fn issue_credit_note(
        &self,
        invoice: &InvoiceId,
        issue: &mut IssueCreditNote<'_>,
    ) -> Result<CreditNote, InvoiceStoreError> {
        let mut state = self.state.lock();
        let StoredInvoices {
            invoices,
            credit_notes,
        } = &mut *state;
        let stored = invoices
            .get(invoice)
            .ok_or_else(|| InvoiceStoreError::NotFound {
                id: invoice.clone(),
            })?;
        let previous = credit_notes.entry(invoice.clone()).or_default();
        let note = issue(stored, previous)?;
        previous.push(note.clone());
        Ok(note)
    }

    fn credit_notes_of(&self, invoice: &InvoiceId) -> Vec<CreditNote> {
        self.state
            .lock()
            .credit_notes
            .get(invoice)
            .cloned()
            .unwrap_or_default()
    }
}
