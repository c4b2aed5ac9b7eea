//! Credit notes: corrections to a finalized invoice that never edit it.
//!
//! A [`CreditNote`] refers to a finalized (or paid) invoice by number and
//! credits part or all of it, with its own gapless number from the
//! credit-note series (`AER-CN-2026-000001`). The sum of all credit notes of
//! an invoice can never exceed the invoice total; [`CreditNote::issue`]
//! checks this against the notes issued before.

use aerolith_core::Clock;
use serde::{Deserialize, Serialize};

use super::numbering::{
    utc_year, InvoiceNumber, InvoiceNumberSequence, InvoicePrefix, NumberingError,
};
use super::{Invoice, InvoiceId, InvoiceStatus, INVOICE_LINES_MAX, INVOICE_TEXT_BYTES_MAX};
use crate::money::{Currency, Money, MoneyError};

/// Errors of issuing a credit note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreditNoteError {
    /// Only finalized or paid invoices can be credited.
    #[error("invoice {id} is {status}; only finalized or paid invoices can be credited")]
    NotCreditable {
        /// The invoice.
        id: InvoiceId,
        /// Its status.
        status: InvoiceStatus,
    },
    /// The credit note has no lines, or more than [`INVOICE_LINES_MAX`].
    #[error("a credit note needs 1 to {INVOICE_LINES_MAX} lines, got {count}")]
    LineCount {
        /// Number of lines given.
        count: usize,
    },
    /// A line's amount is zero or negative.
    #[error("credit note line {index} must be positive, got {amount}")]
    NonPositiveLine {
        /// Index of the line.
        index: usize,
        /// Its amount.
        amount: Money,
    },
    /// A line's description is empty or too long.
    #[error("credit note line {index}: description must be 1 to {INVOICE_TEXT_BYTES_MAX} bytes")]
    Description {
        /// Index of the line.
        index: usize,
    },
    /// A previous credit note belongs to another invoice.
    #[error("credit note {credit_note} belongs to invoice {its_invoice}, not {invoice}")]
    ForeignCreditNote {
        /// The previous credit note.
        credit_note: InvoiceNumber,
        /// The invoice it credits.
        its_invoice: InvoiceNumber,
        /// The invoice being credited now.
        invoice: InvoiceNumber,
    },
    /// The credit would exceed what is left of the invoice total.
    #[error("credit {requested} exceeds what can still be credited: {creditable}")]
    ExceedsCreditable {
        /// The credit asked for.
        requested: Money,
        /// The invoice total minus previous credit notes.
        creditable: Money,
    },
    /// Money arithmetic failed (overflow or currency mismatch).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// Taking a number failed.
    #[error(transparent)]
    Numbering(#[from] NumberingError),
}

/// Why a credit note was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CreditNoteReason {
    /// The invoice charged too much by mistake.
    BillingError,
    /// The invoice duplicated another.
    Duplicate,
    /// The service was degraded (e.g. an SLA credit).
    ServiceIssue,
    /// A goodwill gesture.
    Goodwill,
    /// Anything else (say what in the memo).
    Other,
}

/// One line of a credit note: a positive amount credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNoteLine {
    /// What is credited.
    pub description: String,
    /// How much (positive).
    pub amount: Money,
}

/// What a caller asks to credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteRequest {
    /// The lines.
    pub lines: Vec<CreditNoteLine>,
    /// The reason.
    pub reason: CreditNoteReason,
    /// Free text for the customer (may be empty).
    pub memo: String,
}

/// A numbered correction of a finalized invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    /// The credit note's number (credit-note series).
    pub number: InvoiceNumber,
    /// The number of the invoice it credits.
    pub invoice_number: InvoiceNumber,
    /// The id of that invoice.
    pub invoice_id: InvoiceId,
    /// The tenant.
    pub tenant: String,
    /// The currency.
    pub currency: Currency,
    /// The credited lines.
    pub lines: Vec<CreditNoteLine>,
    /// Sum of the lines.
    pub total: Money,
    /// Why.
    pub reason: CreditNoteReason,
    /// Free text.
    pub memo: String,
    /// When it was issued.
    pub issued_at_unix_ms: i64,
}

impl CreditNote {
    /// Issues a credit note against `invoice`, given every credit note issued
    /// against it before (`previous`). Checks everything before taking a
    /// number, so a failed issue leaves no gap in the series.
    pub fn issue(
        invoice: &Invoice,
        previous: &[CreditNote],
        request: CreditNoteRequest,
        numbers: &dyn InvoiceNumberSequence,
        prefix: &InvoicePrefix,
        clock: &dyn Clock,
    ) -> Result<CreditNote, CreditNoteError> {
        let invoice_number = match (invoice.status(), invoice.number()) {
            (InvoiceStatus::Finalized | InvoiceStatus::Paid, Some(number)) => number.clone(),
            (status, _) => {
                return Err(CreditNoteError::NotCreditable {
                    id: invoice.id().clone(),
                    status,
                })
            }
        };
        let currency = invoice.currency();
        let count = request.lines.len();
        if count == 0 || count > INVOICE_LINES_MAX {
            return Err(CreditNoteError::LineCount { count });
        }
        for (index, line) in request.lines.iter().enumerate() {
            if line.description.is_empty() || line.description.len() > INVOICE_TEXT_BYTES_MAX {
                return Err(CreditNoteError::Description { index });
            }
            if line.amount.currency != currency {
                return Err(MoneyError::CurrencyMismatch {
                    left: currency,
                    right: line.amount.currency,
                }
                .into());
            }
            if !line.amount.is_positive() {
                return Err(CreditNoteError::NonPositiveLine {
                    index,
                    amount: line.amount,
                });
            }
        }
        for note in previous {
            if note.invoice_number != invoice_number {
                return Err(CreditNoteError::ForeignCreditNote {
                    credit_note: note.number.clone(),
                    its_invoice: note.invoice_number.clone(),
                    invoice: invoice_number,
                });
            }
        }
        let requested = Money::checked_sum(currency, request.lines.iter().map(|line| line.amount))?;
        let credited = Money::checked_sum(currency, previous.iter().map(|note| note.total))?;
        let creditable = invoice.total().checked_sub(credited)?;
        if requested.amount_minor > creditable.amount_minor {
            return Err(CreditNoteError::ExceedsCreditable {
                requested,
                creditable,
            });
        }
        let issued_at_unix_ms = clock.now_unix_ms();
        let year = utc_year(issued_at_unix_ms)?;
        let number = numbers.next_number(prefix, year)?;
        Ok(CreditNote {
            number,
            invoice_number,
            invoice_id: invoice.id().clone(),
            tenant: invoice.tenant().to_owned(),
            currency,
            lines: request.lines,
            total: requested,
            reason: request.reason,
            memo: request.memo,
            issued_at_unix_ms,
        })
    }
}
