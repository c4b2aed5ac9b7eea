//! Credit notes: corrections of finalized invoices, within the invoice total.
#![allow(clippy::inconsistent_digit_grouping)]

use aerolith_billing::{
    Catalog, CreditNote, CreditNoteError, CreditNoteLine, CreditNoteReason, CreditNoteRequest,
    Currency, InMemoryInvoiceNumberSequence, Invoice, InvoiceBuilder, InvoiceId, InvoicePrefix,
    InvoiceStatus, Money, MoneyError,
};
use aerolith_core::ManualClock;

use crate::invoice::{november, starter_overage_month, usd, ISSUE_UNIX_MS};

struct Setup {
    numbers: InMemoryInvoiceNumberSequence,
    clock: ManualClock,
    invoice: Invoice,
}

/// The $32.53 Starter overage invoice, finalized as AER-2026-000001.
fn finalized_invoice() -> Setup {
    let catalog = Catalog::default_catalog();
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut invoice = starter_overage_month(&catalog).build().expect("valid");
    invoice
        .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
        .expect("finalizes");
    assert_eq!(invoice.total(), usd(32_53));
    Setup {
        numbers,
        clock,
        invoice,
    }
}

fn request(cents: &[i64]) -> CreditNoteRequest {
    CreditNoteRequest {
        lines: cents
            .iter()
            .map(|&amount| CreditNoteLine {
                description: "Overage billed in error".into(),
                amount: usd(amount),
            })
            .collect(),
        reason: CreditNoteReason::BillingError,
        memo: String::new(),
    }
}

impl Setup {
    fn issue(&self, previous: &[CreditNote], cents: &[i64]) -> Result<CreditNote, CreditNoteError> {
        CreditNote::issue(
            &self.invoice,
            previous,
            request(cents),
            &self.numbers,
            &InvoicePrefix::credit_notes(),
            &self.clock,
        )
    }
}

#[test]
fn credit_notes_add_up_to_the_invoice_total_and_no_further() {
    let setup = finalized_invoice();
    let first = setup.issue(&[], &[10_00, 2_00]).expect("within the total");
    assert_eq!(first.number.to_string(), "AER-CN-2026-000001");
    assert_eq!(first.invoice_number.to_string(), "AER-2026-000001");
    assert_eq!(first.total, usd(12_00));
    assert_eq!(first.issued_at_unix_ms, ISSUE_UNIX_MS);

    let too_much = setup
        .issue(std::slice::from_ref(&first), &[20_54])
        .expect_err("one cent too many");
    assert_eq!(
        too_much,
        CreditNoteError::ExceedsCreditable {
            requested: usd(20_54),
            creditable: usd(20_53)
        }
    );

    let second = setup
        .issue(std::slice::from_ref(&first), &[20_53])
        .expect("exactly the rest");
    assert_eq!(
        second.number.to_string(),
        "AER-CN-2026-000002",
        "the refused note took no number"
    );
    let after_all = setup
        .issue(&[first, second], &[1])
        .expect_err("nothing left");
    assert_eq!(
        after_all,
        CreditNoteError::ExceedsCreditable {
            requested: usd(1),
            creditable: usd(0)
        }
    );
    assert_eq!(
        setup.invoice.status(),
        InvoiceStatus::Finalized,
        "the invoice itself is untouched"
    );
    assert_eq!(setup.invoice.total(), usd(32_53));
}

#[test]
fn paid_invoices_can_be_credited() {
    let mut setup = finalized_invoice();
    setup.invoice.pay("pay_1", &setup.clock).expect("pay");
    assert!(setup.issue(&[], &[5_00]).is_ok());
}

#[test]
fn drafts_and_void_invoices_cannot_be_credited() {
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let numbers = InMemoryInvoiceNumberSequence::new();
    let mut invoice =
        InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
            .adjustment("Charge", usd(10_00))
            .build()
            .expect("valid");
    let issue = |invoice: &Invoice| {
        CreditNote::issue(
            invoice,
            &[],
            request(&[1_00]),
            &numbers,
            &InvoicePrefix::credit_notes(),
            &clock,
        )
    };
    assert_eq!(
        issue(&invoice),
        Err(CreditNoteError::NotCreditable {
            id: InvoiceId("inv".into()),
            status: InvoiceStatus::Draft
        })
    );
    invoice
        .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
        .expect("finalizes");
    invoice.void("duplicate", &clock).expect("void");
    assert_eq!(
        issue(&invoice),
        Err(CreditNoteError::NotCreditable {
            id: InvoiceId("inv".into()),
            status: InvoiceStatus::Void
        })
    );
}

#[test]
fn bad_lines_are_refused() {
    let setup = finalized_invoice();
    assert_eq!(
        setup.issue(&[], &[]),
        Err(CreditNoteError::LineCount { count: 0 })
    );
    assert_eq!(
        setup.issue(&[], &[5_00, 0]),
        Err(CreditNoteError::NonPositiveLine {
            index: 1,
            amount: usd(0)
        })
    );
    assert_eq!(
        setup.issue(&[], &[-1]),
        Err(CreditNoteError::NonPositiveLine {
            index: 0,
            amount: usd(-1)
        })
    );
    let mut euros = request(&[1_00]);
    euros.lines[0].amount = Money::new(1_00, Currency::EUR);
    let error = CreditNote::issue(
        &setup.invoice,
        &[],
        euros,
        &setup.numbers,
        &InvoicePrefix::credit_notes(),
        &setup.clock,
    )
    .expect_err("wrong currency");
    assert!(matches!(
        error,
        CreditNoteError::Money(MoneyError::CurrencyMismatch { .. })
    ));
    let mut blank = request(&[1_00]);
    blank.lines[0].description.clear();
    let error = CreditNote::issue(
        &setup.invoice,
        &[],
        blank,
        &setup.numbers,
        &InvoicePrefix::credit_notes(),
        &setup.clock,
    )
    .expect_err("blank description");
    assert_eq!(error, CreditNoteError::Description { index: 0 });
}

#[test]
fn credit_notes_of_another_invoice_are_refused() {
    let setup = finalized_invoice();
    let mut other =
        InvoiceBuilder::new(InvoiceId("other".into()), "acme", Currency::USD, november())
            .adjustment("Charge", usd(10_00))
            .build()
            .expect("valid");
    other
        .finalize(&setup.numbers, &InvoicePrefix::invoices(), &setup.clock)
        .expect("finalizes");
    let foreign = CreditNote::issue(
        &other,
        &[],
        request(&[1_00]),
        &setup.numbers,
        &InvoicePrefix::credit_notes(),
        &setup.clock,
    )
    .expect("valid on its own invoice");
    let error = setup.issue(&[foreign], &[1_00]).expect_err("foreign note");
    assert!(matches!(error, CreditNoteError::ForeignCreditNote { .. }));
}

#[test]
fn credit_notes_serialize_to_json() {
    let setup = finalized_invoice();
    let note = setup.issue(&[], &[1_00]).expect("valid");
    let json = serde_json::to_string(&note).expect("serializes");
    assert!(json.contains(r#""reason":"billing_error""#), "{json}");
    assert_eq!(
        serde_json::from_str::<CreditNote>(&json).expect("reads back"),
        note
    );
}
