//! Payments through the public API: idempotency across providers, a crypto
//! invoice from quote to confirmation, and a signed webhook.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aerolith_billing::payment::crypto::{
    fiat_to_token_minor, Chain, ChainRpc, CryptoConfig, CryptoProvider, ObservedTransfer, RpcError,
    SolanaAddress, Token, TronAddress,
};
use aerolith_billing::payment::manual::ManualProvider;
use aerolith_billing::payment::webhook::{sign, WebhookError, WebhookVerifier};
use aerolith_billing::payment::{
    ChargeRequest, IdempotentPayments, PaymentError, PaymentMethod, PaymentOutcome,
};
use aerolith_core::ManualClock;
use parking_lot::Mutex;
use rust_decimal_macros::dec;

const USDT_CONTRACT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

/// A node that knows a fixed set of transfers and counts lookups.
#[derive(Default)]
struct FakeNode {
    transfers: Mutex<HashMap<String, ObservedTransfer>>,
    lookups: AtomicU64,
}

impl ChainRpc for &FakeNode {
    fn get_transaction(
        &self,
        _chain: Chain,
        tx_id: &str,
    ) -> Result<Option<ObservedTransfer>, RpcError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(self.transfers.lock().get(tx_id).cloned())
    }
}

#[test]
fn usdt_invoice_is_quoted_sent_and_confirmed() {
    let node = FakeNode::default();
    let payments = IdempotentPayments::new(CryptoProvider::new(
        &node,
        CryptoConfig {
            tron_recipient: Some(TronAddress::parse(USDT_CONTRACT).expect("valid")),
            solana_recipient: Some(SolanaAddress::parse(USDC_MINT).expect("valid")),
            ..CryptoConfig::default()
        },
    ));
    // $99.00 at 0.9998 USD per USDT: 99.0198... USDT -> 99_019_804 micro.
    let quoted = fiat_to_token_minor(9_900, 2, dec!(0.9998), Token::UsdtTron).expect("quotes");
    assert_eq!(quoted, 99_019_804);
    let tx = "4f1c0a2b9e";
    let request = ChargeRequest {
        invoice_id: "inv_0002".into(),
        amount_minor: 9_900,
        currency: "USD".into(),
        idempotency_key: format!("inv_0002/{tx}"),
        method: PaymentMethod::Crypto {
            token: Token::UsdtTron,
            tx_id: tx.into(),
            quoted_amount_minor: quoted,
        },
    };
    node.transfers.lock().insert(
        tx.into(),
        ObservedTransfer {
            to: USDT_CONTRACT.into(),
            token: Token::UsdtTron,
            amount_minor: quoted,
            confirmations: 3,
        },
    );
    assert_eq!(
        payments.charge(&request),
        Ok(PaymentOutcome::Pending {
            reference: tx.into()
        })
    );
    node.transfers
        .lock()
        .get_mut(tx)
        .expect("known")
        .confirmations = 19;
    assert_eq!(
        payments.charge(&request),
        Ok(PaymentOutcome::Succeeded {
            reference: tx.into()
        })
    );
    // Once succeeded, replays answer from the store without the node.
    let lookups = node.lookups.load(Ordering::SeqCst);
    assert!(payments.charge(&request).is_ok());
    assert_eq!(node.lookups.load(Ordering::SeqCst), lookups);
}

#[test]
fn idempotency_conflict_names_both_requests() {
    let payments = IdempotentPayments::new(ManualProvider::new());
    let mut request = ChargeRequest {
        invoice_id: "inv_1".into(),
        amount_minor: 500,
        currency: "EUR".into(),
        idempotency_key: "key".into(),
        method: PaymentMethod::BankTransfer,
    };
    payments.charge(&request).expect("pending");
    request.currency = "USD".into();
    match payments.charge(&request) {
        Err(PaymentError::IdempotencyConflict(conflict)) => {
            assert_eq!(conflict.stored_currency, "EUR");
            assert_eq!(conflict.requested_currency, "USD");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(payments.provider().awaiting().len(), 1);
}

#[test]
fn webhook_signed_by_the_provider_verifies_and_replays_expire() {
    let clock = ManualClock::new(1_750_000_000_000);
    let verifier = WebhookVerifier::new(vec![b"whsec_live".to_vec()]).expect("secret");
    let body = br#"{"type":"charge.succeeded","id":"evt_1"}"#;
    let header = sign(b"whsec_live", 1_750_000_000, body);
    assert!(verifier.verify(&header, body, &clock).is_ok());
    clock.advance(std::time::Duration::from_secs(301));
    assert_eq!(
        verifier.verify(&header, body, &clock),
        Err(WebhookError::TimestampOutsideTolerance {
            timestamp_unix_s: 1_750_000_000,
            now_unix_s: 1_750_000_301,
            tolerance_s: 300
        })
    );
}
