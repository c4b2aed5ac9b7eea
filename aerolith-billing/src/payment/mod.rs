//! Payments: the [`PaymentProvider`] trait every way of collecting money sits
//! behind, and [`IdempotentPayments`], which guarantees that one idempotency
//! key charges at most once.
//!
//! Providers:
//! - [`manual::ManualProvider`]: bank transfer / pay by invoice; the charge is
//!   `Pending` until an operator marks the transfer as received.
//! - [`test_provider::TestProvider`]: deterministic card outcomes by card
//!   number, in the style of Stripe's test cards.
//! - [`crypto::CryptoProvider`]: on-chain payments (Solana SOL/USDC, Tron
//!   TRX/USDT) confirmed by transaction id through a [`crypto::ChainRpc`].
//!
//! [`webhook`] verifies signed provider callbacks.
//!
//! Amounts are integer minor units of `currency` (an ISO 4217 code).

pub mod crypto;
pub mod manual;
pub mod test_provider;
pub mod webhook;

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::payment::crypto::{CryptoError, Token};

/// How the customer pays.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A card, by number (test provider only; real card data never reaches
    /// this crate).
    Card {
        /// The card number; spaces are ignored.
        number: String,
    },
    /// A bank transfer against the invoice.
    BankTransfer,
    /// An on-chain transfer the customer already sent.
    Crypto {
        /// Which token was sent.
        token: Token,
        /// The transaction id (signature on Solana, hash on Tron).
        tx_id: String,
        /// Amount quoted to the customer, in the token's minor units
        /// (see [`crypto::fiat_to_token_minor`]).
        quoted_amount_minor: u128,
    },
}

impl PaymentMethod {
    /// A short name for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PaymentMethod::Card { .. } => "card",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::Crypto { .. } => "crypto",
        }
    }
}

/// A request to collect an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The invoice being paid.
    pub invoice_id: String,
    /// Amount in minor units of `currency`; must be positive.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The same key never charges twice (see [`IdempotentPayments`]).
    pub idempotency_key: String,
    /// How to pay.
    pub method: PaymentMethod,
}

/// Why a payment was declined (a final answer, unlike a transient error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DeclineReason {
    /// The issuer declined the card.
    CardDeclined,
    /// Not enough funds.
    InsufficientFunds,
    /// The card number is not one the provider knows.
    IncorrectNumber,
    /// The transaction paid a different address.
    WrongRecipient,
    /// The transaction moved a different token.
    WrongToken,
    /// The transaction moved less than quoted.
    Underpaid {
        /// Quoted amount, token minor units.
        expected_minor: u128,
        /// Amount observed on chain, token minor units.
        received_minor: u128,
    },
    /// The transaction was already used to pay another invoice.
    TransactionAlreadyUsed {
        /// The invoice it paid.
        invoice_id: String,
    },
}

/// The result of a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// The money is collected.
    Succeeded {
        /// The provider's reference for the payment.
        reference: String,
    },
    /// Accepted, but the money has not arrived yet (bank transfer,
    /// unconfirmed transaction); ask [`PaymentProvider::status`] later.
    Pending {
        /// The provider's reference for the payment.
        reference: String,
    },
    /// Refused for good; retrying the same request will not help.
    Declined {
        /// Why.
        reason: DeclineReason,
    },
}

/// Why a charge could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// A temporary failure (network, processor outage); retry later with the
    /// same idempotency key.
    #[error("transient failure at provider {provider}: {detail}")]
    Transient {
        /// The provider.
        provider: &'static str,
        /// What failed.
        detail: String,
    },
    /// The provider does not handle this payment method.
    #[error("provider {provider} does not accept {method} payments")]
    UnsupportedMethod {
        /// The provider.
        provider: &'static str,
        /// The method's kind.
        method: &'static str,
    },
    /// The amount is zero or negative.
    #[error("amount {amount_minor} is not positive")]
    InvalidAmount {
        /// The offending amount.
        amount_minor: i64,
    },
    /// The idempotency key was used before for a different request (boxed:
    /// the details are large and the error is rare).
    #[error("idempotency key {} was used for {} {} on invoice {}, not {} {} on {}", .0.key, .0.stored_amount_minor, .0.stored_currency, .0.stored_invoice_id, .0.requested_amount_minor, .0.requested_currency, .0.requested_invoice_id)]
    IdempotencyConflict(Box<IdempotencyConflict>),
    /// The idempotency key is empty or longer than [`IDEMPOTENCY_KEY_BYTES_MAX`].
    #[error("idempotency key of {len_bytes} bytes is outside 1..={max}", max = IDEMPOTENCY_KEY_BYTES_MAX)]
    InvalidIdempotencyKey {
        /// The key's length.
        len_bytes: usize,
    },
    /// The provider has no payment with this reference.
    #[error("unknown payment reference {reference}")]
    UnknownReference {
        /// The reference.
        reference: String,
    },
    /// The payment was already completed.
    #[error("payment {reference} is already paid")]
    AlreadyPaid {
        /// The reference.
        reference: String,
    },
    /// A crypto address, token or amount problem.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl PaymentError {
    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, PaymentError::Transient { .. })
    }
}

/// The two requests that shared an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConflict {
    /// The key.
    pub key: String,
    /// Invoice of the first request.
    pub stored_invoice_id: String,
    /// Amount of the first request.
    pub stored_amount_minor: i64,
    /// Currency of the first request.
    pub stored_currency: String,
    /// Invoice of this request.
    pub requested_invoice_id: String,
    /// Amount of this request.
    pub requested_amount_minor: i64,
    /// Currency of this request.
    pub requested_currency: String,
}

/// Longest idempotency key accepted, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// A way to collect money.
pub trait PaymentProvider: Send + Sync {
    /// A short stable name, used in errors and stored references.
    fn name(&self) -> &'static str;

    /// Attempts to collect `request`. Providers may assume the request was
    /// validated by [`IdempotentPayments`] (positive amount, key present).
    fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError>;

    /// The current outcome of an earlier charge, by reference; lets a
    /// `Pending` payment become `Succeeded` without charging again.
    fn status(&self, reference: &str) -> Result<PaymentOutcome, PaymentError>;
}

impl<P: PaymentProvider + ?Sized> PaymentProvider for std::sync::Arc<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError> {
        (**self).charge(request)
    }
    fn status(&self, reference: &str) -> Result<PaymentOutcome, PaymentError> {
        (**self).status(reference)
    }
}

/// What the idempotency store remembers per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Invoice of the first request.
    pub invoice_id: String,
    /// Amount of the first request.
    pub amount_minor: i64,
    /// Currency of the first request.
    pub currency: String,
    /// The outcome it produced (refreshed by later `status` calls).
    pub outcome: PaymentOutcome,
}

/// Wraps a provider so one idempotency key charges at most once.
///
/// - A key seen before with the same invoice, amount and currency returns the
///   stored outcome without calling `charge` (a stored `Pending` is refreshed
///   through [`PaymentProvider::status`]).
/// - A key seen before with a different invoice, amount or currency is an
///   [`PaymentError::IdempotencyConflict`].
/// - Transient errors are not stored, so a retry with the same key charges.
///
/// Charges through one wrapper are serialized by a mutex held across the
/// provider call, so two concurrent requests with one key cannot both reach
/// the provider. The records live in memory; [`Self::records`] and
/// [`Self::with_records`] move them to and from durable storage.
pub struct IdempotentPayments<P> {
    provider: P,
    records: Mutex<HashMap<String, IdempotencyRecord>>,
}

impl<P: PaymentProvider> IdempotentPayments<P> {
    /// Wraps `provider` with an empty store.
    pub fn new(provider: P) -> Self {
        Self::with_records(provider, HashMap::new())
    }

    /// Wraps `provider` with previously saved records.
    pub fn with_records(provider: P, records: HashMap<String, IdempotencyRecord>) -> Self {
        IdempotentPayments {
            provider,
            records: Mutex::new(records),
        }
    }

    /// The wrapped provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The stored record of one key, if any (to persist it after a charge).
    pub fn record(&self, idempotency_key: &str) -> Option<IdempotencyRecord> {
        self.records.lock().get(idempotency_key).cloned()
    }

    /// A copy of the stored records, for persistence.
    pub fn records(&self) -> HashMap<String, IdempotencyRecord> {
        self.records.lock().clone()
    }

    /// Charges `request` unless its idempotency key already did.
    pub fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError> {
        if request.amount_minor <= 0 {
            return Err(PaymentError::InvalidAmount {
                amount_minor: request.amount_minor,
            });
        }
        let key_len = request.idempotency_key.len();
        if key_len == 0 || key_len > IDEMPOTENCY_KEY_BYTES_MAX {
            return Err(PaymentError::InvalidIdempotencyKey { len_bytes: key_len });
        }
        let mut records = self.records.lock();
        if let Some(record) = records.get_mut(&request.idempotency_key) {
            if record.invoice_id != request.invoice_id
                || record.amount_minor != request.amount_minor
                || record.currency != request.currency
            {
                return Err(PaymentError::IdempotencyConflict(Box::new(
                    IdempotencyConflict {
                        key: request.idempotency_key.clone(),
                        stored_invoice_id: record.invoice_id.clone(),
                        stored_amount_minor: record.amount_minor,
                        stored_currency: record.currency.clone(),
                        requested_invoice_id: request.invoice_id.clone(),
                        requested_amount_minor: request.amount_minor,
                        requested_currency: request.currency.clone(),
                    },
                )));
            }
            if let PaymentOutcome::Pending { reference } = &record.outcome {
                record.outcome = self.provider.status(reference)?;
            }
            return Ok(record.outcome.clone());
        }
        let outcome = self.provider.charge(request)?;
        records.insert(
            request.idempotency_key.clone(),
            IdempotencyRecord {
                invoice_id: request.invoice_id.clone(),
                amount_minor: request.amount_minor,
                currency: request.currency.clone(),
                outcome: outcome.clone(),
            },
        );
        Ok(outcome)
    }
}
