//! A deterministic card provider for tests and demos, modelled on Stripe's
//! test cards. The outcome depends only on the card number (spaces ignored):
//!
//! | card number           | outcome                                  |
//! |-----------------------|------------------------------------------|
//! | `4242 4242 4242 4242` | succeeds                                 |
//! | `4000 0000 0000 0002` | declined: card declined                  |
//! | `4000 0000 0000 9995` | declined: insufficient funds             |
//! | `4000 0000 0000 0119` | transient processing error (retry later) |
//! | anything else         | declined: incorrect number               |
//!
//! It counts every call to `charge`, so tests can prove idempotency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::payment::{
    ChargeRequest, DeclineReason, PaymentError, PaymentMethod, PaymentOutcome, PaymentProvider,
};

const PROVIDER: &str = "test";

/// Card that always succeeds.
pub const CARD_SUCCEEDS: &str = "4242424242424242";
/// Card that is always declined.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Card declined for insufficient funds.
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Card whose charge fails transiently.
pub const CARD_TRANSIENT_FAILURE: &str = "4000000000000119";

/// The deterministic test provider.
#[derive(Debug, Default)]
pub struct TestProvider {
    calls: AtomicU64,
    succeeded: Mutex<HashMap<String, String>>,
}

impl TestProvider {
    /// A provider that has seen no calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `charge` was called.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let PaymentMethod::Card { number } = &request.method else {
            return Err(PaymentError::UnsupportedMethod {
                provider: PROVIDER,
                method: request.method.kind(),
            });
        };
        let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
        let declined = |reason| Ok(PaymentOutcome::Declined { reason });
        match digits.as_str() {
            CARD_SUCCEEDS => {
                let reference = format!("test_ch_{call:06}");
                self.succeeded
                    .lock()
                    .insert(reference.clone(), request.invoice_id.clone());
                Ok(PaymentOutcome::Succeeded { reference })
            }
            CARD_DECLINED => declined(DeclineReason::CardDeclined),
            CARD_INSUFFICIENT_FUNDS => declined(DeclineReason::InsufficientFunds),
            CARD_TRANSIENT_FAILURE => Err(PaymentError::Transient {
                provider: PROVIDER,
                detail: "processing error".into(),
            }),
            _ => declined(DeclineReason::IncorrectNumber),
        }
    }

    fn status(&self, reference: &str) -> Result<PaymentOutcome, PaymentError> {
        if self.succeeded.lock().contains_key(reference) {
            Ok(PaymentOutcome::Succeeded {
                reference: reference.to_owned(),
            })
        } else {
            Err(PaymentError::UnknownReference {
                reference: reference.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::IdempotentPayments;

    fn card(key: &str, number: &str, amount_minor: i64) -> ChargeRequest {
        ChargeRequest {
            invoice_id: "inv_1".into(),
            amount_minor,
            currency: "USD".into(),
            idempotency_key: key.into(),
            method: PaymentMethod::Card {
                number: number.into(),
            },
        }
    }

    #[test]
    fn test_cards_behave_like_their_table() {
        let p = TestProvider::new();
        assert_eq!(
            p.charge(&card("a", "4242 4242 4242 4242", 100)),
            Ok(PaymentOutcome::Succeeded {
                reference: "test_ch_000001".into()
            })
        );
        assert_eq!(
            p.charge(&card("b", "4000 0000 0000 0002", 100)),
            Ok(PaymentOutcome::Declined {
                reason: DeclineReason::CardDeclined
            })
        );
        assert_eq!(
            p.charge(&card("c", CARD_INSUFFICIENT_FUNDS, 100)),
            Ok(PaymentOutcome::Declined {
                reason: DeclineReason::InsufficientFunds
            })
        );
        let transient = p.charge(&card("d", "4000 0000 0000 0119", 100));
        assert!(transient.as_ref().is_err_and(PaymentError::is_transient));
        assert_eq!(
            p.charge(&card("e", "1234", 100)),
            Ok(PaymentOutcome::Declined {
                reason: DeclineReason::IncorrectNumber
            })
        );
        assert_eq!(p.calls(), 5);
    }

    #[test]
    fn same_key_never_charges_twice() {
        let payments = IdempotentPayments::new(TestProvider::new());
        let first = payments
            .charge(&card("k1", CARD_SUCCEEDS, 2_900))
            .expect("charges");
        let again = payments
            .charge(&card("k1", CARD_SUCCEEDS, 2_900))
            .expect("replays");
        assert_eq!(first, again);
        assert_eq!(payments.provider().calls(), 1);
        // A decline is a final answer and is replayed too.
        payments
            .charge(&card("k2", CARD_DECLINED, 2_900))
            .expect("declines");
        payments
            .charge(&card("k2", CARD_DECLINED, 2_900))
            .expect("replays");
        assert_eq!(payments.provider().calls(), 2);
    }

    #[test]
    fn same_key_with_a_different_amount_is_a_conflict() {
        let payments = IdempotentPayments::new(TestProvider::new());
        payments
            .charge(&card("k1", CARD_SUCCEEDS, 2_900))
            .expect("charges");
        assert_eq!(
            payments.charge(&card("k1", CARD_SUCCEEDS, 9_900)),
            Err(PaymentError::IdempotencyConflict(Box::new(
                crate::payment::IdempotencyConflict {
                    key: "k1".into(),
                    stored_invoice_id: "inv_1".into(),
                    stored_amount_minor: 2_900,
                    stored_currency: "USD".into(),
                    requested_invoice_id: "inv_1".into(),
                    requested_amount_minor: 9_900,
                    requested_currency: "USD".into(),
                }
            )))
        );
        assert_eq!(payments.provider().calls(), 1);
    }

    #[test]
    fn transient_failures_are_not_remembered_so_a_retry_charges() {
        let payments = IdempotentPayments::new(TestProvider::new());
        let request = card("k1", CARD_TRANSIENT_FAILURE, 100);
        assert!(payments.charge(&request).is_err_and(|e| e.is_transient()));
        assert!(payments.charge(&request).is_err_and(|e| e.is_transient()));
        assert_eq!(payments.provider().calls(), 2);
        assert!(payments.records().is_empty());
    }

    #[test]
    fn invalid_amounts_and_keys_are_refused_before_the_provider() {
        let payments = IdempotentPayments::new(TestProvider::new());
        assert_eq!(
            payments.charge(&card("k", CARD_SUCCEEDS, 0)),
            Err(PaymentError::InvalidAmount { amount_minor: 0 })
        );
        assert_eq!(
            payments.charge(&card("", CARD_SUCCEEDS, 1)),
            Err(PaymentError::InvalidIdempotencyKey { len_bytes: 0 })
        );
        let long = "k".repeat(crate::payment::IDEMPOTENCY_KEY_BYTES_MAX + 1);
        assert_eq!(
            payments.charge(&card(&long, CARD_SUCCEEDS, 1)),
            Err(PaymentError::InvalidIdempotencyKey {
                len_bytes: crate::payment::IDEMPOTENCY_KEY_BYTES_MAX + 1
            })
        );
        let at_limit = "k".repeat(crate::payment::IDEMPOTENCY_KEY_BYTES_MAX);
        assert!(payments.charge(&card(&at_limit, CARD_SUCCEEDS, 1)).is_ok());
        assert_eq!(payments.provider().calls(), 1);
    }
}
