//! The invoice store: atomic state changes and race-free credit-note limits.
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;
use std::thread;

use aerolith_billing::{
    Catalog, CreditNote, CreditNoteError, CreditNoteLine, CreditNoteReason, CreditNoteRequest,
    Currency, InMemoryInvoiceNumberSequence, InMemoryInvoiceStore, Invoice, InvoiceBuilder,
    InvoiceError, InvoiceId, InvoicePeriod, InvoicePrefix, InvoiceStatus, InvoiceStore,
    InvoiceStoreError,
};
use aerolith_core::ManualClock;

use crate::invoice::{
    november, starter_overage_month, usd, DEC_1_2026_UNIX_MS, ISSUE_UNIX_MS, NOV_1_2026_UNIX_MS,
};

fn draft(id: &str, tenant: &str, period: InvoicePeriod) -> Invoice {
    InvoiceBuilder::new(InvoiceId(id.into()), tenant, Currency::USD, period)
        .adjustment("Charge", usd(10_00))
        .build()
        .expect("valid")
}

#[test]
fn finalize_through_the_store_keeps_the_numbered_invoice() {
    let store = InMemoryInvoiceStore::new();
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let id = InvoiceId("inv_1".into());
    store
        .save_draft(&draft("inv_1", "acme", november()))
        .expect("new draft");
    let finalized = store
        .update(&id, &mut |invoice| {
            invoice
                .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
                .map(|_| ())
        })
        .expect("finalizes");
    assert_eq!(finalized.status(), InvoiceStatus::Finalized);
    assert_eq!(store.get(&id), Some(finalized.clone()));
    assert_eq!(
        store.save_draft(&draft("inv_1", "acme", november())),
        Err(InvoiceStoreError::NotADraft {
            id: id.clone(),
            status: InvoiceStatus::Finalized
        })
    );
    assert_eq!(
        store.save_draft(&finalized),
        Err(InvoiceStoreError::SaveNonDraft {
            id,
            status: InvoiceStatus::Finalized
        })
    );
}

#[test]
fn a_failed_update_stores_nothing() {
    let store = InMemoryInvoiceStore::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let id = InvoiceId("inv_1".into());
    let original = draft("inv_1", "acme", november());
    store.save_draft(&original).expect("new draft");
    let error = store
        .update(&id, &mut |invoice| invoice.pay("ref", &clock))
        .expect_err("drafts cannot be paid");
    assert!(matches!(
        error,
        InvoiceStoreError::Invoice(InvoiceError::InvalidTransition { .. })
    ));
    assert_eq!(store.get(&id), Some(original));
    let missing = InvoiceId("nope".into());
    assert_eq!(
        store.update(&missing, &mut |_| Ok(())).map(|_| ()),
        Err(InvoiceStoreError::NotFound { id: missing })
    );
}

#[test]
fn a_tenants_invoices_come_in_period_order() {
    let store = InMemoryInvoiceStore::new();
    let december = InvoicePeriod::new(DEC_1_2026_UNIX_MS, DEC_1_2026_UNIX_MS + 31 * 86_400_000)
        .expect("valid");
    store
        .save_draft(&draft("inv_dec", "acme", december))
        .expect("save");
    store
        .save_draft(&draft("inv_nov", "acme", november()))
        .expect("save");
    store
        .save_draft(&draft("inv_other", "globex", november()))
        .expect("save");
    let ids: Vec<String> = store
        .invoices_of_tenant("acme")
        .iter()
        .map(|invoice| invoice.id().0.clone())
        .collect();
    assert_eq!(ids, vec!["inv_nov", "inv_dec"]);
    assert_eq!(
        store.invoices_of_tenant("acme")[0].period_start_unix_ms(),
        NOV_1_2026_UNIX_MS
    );
}

#[test]
fn concurrent_credit_notes_never_exceed_the_invoice_total() {
    const THREADS: usize = 8;
    const ATTEMPTS_PER_THREAD: usize = 10;
    let catalog = Catalog::default_catalog();
    let store = Arc::new(InMemoryInvoiceStore::new());
    let numbers = Arc::new(InMemoryInvoiceNumberSequence::new());
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut invoice = starter_overage_month(&catalog).build().expect("valid");
    let id = invoice.id().clone();
    store.save_draft(&invoice).expect("save");
    invoice = store
        .update(&id, &mut |invoice| {
            invoice
                .finalize(numbers.as_ref(), &InvoicePrefix::invoices(), &clock)
                .map(|_| ())
        })
        .expect("finalizes");
    assert_eq!(invoice.total(), usd(32_53));

    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, numbers, clock, id) = (
                Arc::clone(&store),
                Arc::clone(&numbers),
                clock.clone(),
                id.clone(),
            );
            thread::spawn(move || {
                let mut refused = 0;
                for _ in 0..ATTEMPTS_PER_THREAD {
                    let result = store.issue_credit_note(
                        &id,
                        &mut |invoice: &Invoice, previous: &[CreditNote]| {
                            let request = CreditNoteRequest {
                                lines: vec![CreditNoteLine {
                                    description: "SLA credit".into(),
                                    amount: usd(5_00),
                                }],
                                reason: CreditNoteReason::ServiceIssue,
                                memo: String::new(),
                            };
                            CreditNote::issue(
                                invoice,
                                previous,
                                request,
                                numbers.as_ref(),
                                &InvoicePrefix::credit_notes(),
                                &clock,
                            )
                        },
                    );
                    match result {
                        Ok(_) => {}
                        Err(InvoiceStoreError::CreditNote(
                            CreditNoteError::ExceedsCreditable { .. },
                        )) => refused += 1,
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
                refused
            })
        })
        .collect();
    let refused: usize = workers
        .into_iter()
        .map(|worker| worker.join().expect("no panic"))
        .sum();
    let notes = store.credit_notes_of(&id);
    // $32.53 holds six $5.00 notes; the seventh would exceed it.
    assert_eq!(notes.len(), 6);
    assert_eq!(refused, THREADS * ATTEMPTS_PER_THREAD - 6);
    let sequences: Vec<u64> = notes.iter().map(|note| note.number.sequence()).collect();
    assert_eq!(
        sequences,
        (1..=6).collect::<Vec<u64>>(),
        "refused notes took no numbers"
    );
}
