//! Manual payments: bank transfer or "pay by invoice". A charge creates a
//! pending transfer with a reference the customer quotes on the transfer; an
//! operator who sees the money arrive calls [`ManualProvider::mark_paid`].

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::payment::{ChargeRequest, PaymentError, PaymentMethod, PaymentOutcome, PaymentProvider};

const PROVIDER: &str = "manual";

/// One expected bank transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualTransfer {
    /// The reference the customer quotes.
    pub reference: String,
    /// The invoice it pays.
    pub invoice_id: String,
    /// Expected amount, minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the operator marked it paid.
    pub paid_at_unix_ms: Option<i64>,
}

/// Bank transfer provider. References are `bt_` plus a sequence number, so
/// they are deterministic and short enough to type into a bank form.
#[derive(Debug, Default)]
pub struct ManualProvider {
    state: Mutex<ManualState>,
}

#[derive(Debug, Default)]
struct ManualState {
    next_sequence: u64,
    transfers: HashMap<String, ManualTransfer>,
}

impl ManualProvider {
    /// A provider with no transfers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the transfer `reference` arrived at `now_unix_ms`.
    pub fn mark_paid(
        &self,
        reference: &str,
        now_unix_ms: i64,
    ) -> Result<ManualTransfer, PaymentError> {
        let mut state = self.state.lock();
        let transfer =
            state
                .transfers
                .get_mut(reference)
                .ok_or_else(|| PaymentError::UnknownReference {
                    reference: reference.to_owned(),
                })?;
        if transfer.paid_at_unix_ms.is_some() {
            return Err(PaymentError::AlreadyPaid {
                reference: reference.to_owned(),
            });
        }
        transfer.paid_at_unix_ms = Some(now_unix_ms);
        Ok(transfer.clone())
    }

    /// Transfers still awaited, ordered by reference.
    pub fn awaiting(&self) -> Vec<ManualTransfer> {
        let state = self.state.lock();
        let mut open: Vec<ManualTransfer> = state
            .transfers
            .values()
            .filter(|t| t.paid_at_unix_ms.is_none())
            .cloned()
            .collect();
        open.sort_by(|a, b| a.reference.cmp(&b.reference));
        open
    }
}

impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError> {
        if request.method != PaymentMethod::BankTransfer {
            return Err(PaymentError::UnsupportedMethod {
                provider: PROVIDER,
                method: request.method.kind(),
            });
        }
        let mut state = self.state.lock();
        state.next_sequence += 1;
        let reference = format!("bt_{:08}", state.next_sequence);
        state.transfers.insert(
            reference.clone(),
            ManualTransfer {
                reference: reference.clone(),
                invoice_id: request.invoice_id.clone(),
                amount_minor: request.amount_minor,
                currency: request.currency.clone(),
                paid_at_unix_ms: None,
            },
        );
        Ok(PaymentOutcome::Pending { reference })
    }

    fn status(&self, reference: &str) -> Result<PaymentOutcome, PaymentError> {
        let state = self.state.lock();
        let transfer =
            state
                .transfers
                .get(reference)
                .ok_or_else(|| PaymentError::UnknownReference {
                    reference: reference.to_owned(),
                })?;
        let reference = reference.to_owned();
        Ok(match transfer.paid_at_unix_ms {
            Some(_) => PaymentOutcome::Succeeded { reference },
            None => PaymentOutcome::Pending { reference },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::IdempotentPayments;

    fn request(key: &str, amount_minor: i64) -> ChargeRequest {
        ChargeRequest {
            invoice_id: "inv_1".into(),
            amount_minor,
            currency: "EUR".into(),
            idempotency_key: key.into(),
            method: PaymentMethod::BankTransfer,
        }
    }

    #[test]
    fn bank_transfer_is_pending_until_the_operator_marks_it_paid() {
        let payments = IdempotentPayments::new(ManualProvider::new());
        let outcome = payments.charge(&request("k1", 2_900)).expect("charges");
        let reference = "bt_00000001".to_owned();
        assert_eq!(
            outcome,
            PaymentOutcome::Pending {
                reference: reference.clone()
            }
        );
        assert_eq!(payments.provider().awaiting().len(), 1);
        // Replaying the key creates no second transfer.
        assert_eq!(payments.charge(&request("k1", 2_900)), Ok(outcome));
        assert_eq!(payments.provider().awaiting().len(), 1);

        let paid = payments
            .provider()
            .mark_paid(&reference, 42)
            .expect("marks");
        assert_eq!(paid.paid_at_unix_ms, Some(42));
        assert_eq!(
            payments.charge(&request("k1", 2_900)),
            Ok(PaymentOutcome::Succeeded {
                reference: reference.clone()
            })
        );
        assert_eq!(
            payments.provider().mark_paid(&reference, 43),
            Err(PaymentError::AlreadyPaid { reference })
        );
        assert!(payments.provider().awaiting().is_empty());
    }

    #[test]
    fn unknown_reference_and_card_method_are_refused() {
        let provider = ManualProvider::new();
        assert_eq!(
            provider.mark_paid("bt_nope", 1),
            Err(PaymentError::UnknownReference {
                reference: "bt_nope".into()
            })
        );
        let mut card = request("k", 1);
        card.method = PaymentMethod::Card {
            number: "4242424242424242".into(),
        };
        assert_eq!(
            provider.charge(&card),
            Err(PaymentError::UnsupportedMethod {
                provider: "manual",
                method: "card"
            })
        );
    }
}
