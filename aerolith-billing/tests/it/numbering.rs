//! Gapless invoice numbers under concurrency, and the number format.

use std::sync::Arc;
use std::thread;

use aerolith_billing::invoice::NumberingError;
use aerolith_billing::{
    Currency, InMemoryInvoiceNumberSequence, InvoiceBuilder, InvoiceId, InvoiceNumber,
    InvoiceNumberSequence, InvoicePrefix,
};
use aerolith_core::ManualClock;

use crate::invoice::{november, usd, ISSUE_UNIX_MS};

const THREADS: usize = 8;
const INVOICES_PER_THREAD: usize = 250;

#[test]
fn eight_threads_finalizing_at_once_get_gapless_numbers() {
    let numbers = Arc::new(InMemoryInvoiceNumberSequence::new());
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let workers: Vec<_> = (0..THREADS)
        .map(|thread_index| {
            let numbers = Arc::clone(&numbers);
            let clock = clock.clone();
            thread::spawn(move || {
                (0..INVOICES_PER_THREAD)
                    .map(|index| {
                        let id = InvoiceId(format!("inv_{thread_index}_{index}"));
                        let mut invoice =
                            InvoiceBuilder::new(id, "acme", Currency::USD, november())
                                .adjustment("Charge", usd(100))
                                .build()
                                .expect("valid draft");
                        invoice
                            .finalize(numbers.as_ref(), &InvoicePrefix::invoices(), &clock)
                            .expect("finalizes")
                            .sequence()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut taken: Vec<u64> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("worker thread does not panic"))
        .collect();
    taken.sort_unstable();
    let expected: Vec<u64> = (1..=(THREADS * INVOICES_PER_THREAD) as u64).collect();
    assert_eq!(taken, expected, "every number from 1 to N exactly once");
}

#[test]
fn sequence_resumes_after_a_restored_number() {
    let last: InvoiceNumber = "AER-2026-000041".parse().expect("valid number");
    let numbers = InMemoryInvoiceNumberSequence::resume_after(&last);
    let next = numbers
        .next_number(&InvoicePrefix::invoices(), 2026)
        .expect("next");
    assert_eq!(next.to_string(), "AER-2026-000042");
}

#[test]
fn exhausted_sequence_is_an_error() {
    let last = InvoiceNumber::new(InvoicePrefix::invoices(), 2026, u64::MAX);
    let numbers = InMemoryInvoiceNumberSequence::resume_after(&last);
    assert_eq!(
        numbers.next_number(&InvoicePrefix::invoices(), 2026),
        Err(NumberingError::Exhausted {
            prefix: "AER".into(),
            year: 2026
        })
    );
}

#[test]
fn prefixes_are_validated() {
    for bad in ["", "aer", "-AER", "AER-", "AER 1", "ABCDEFGHIJKLMNOPQ"] {
        assert_eq!(
            InvoicePrefix::new(bad),
            Err(NumberingError::InvalidPrefix {
                prefix: bad.to_owned()
            }),
            "{bad:?}"
        );
    }
    assert!(InvoicePrefix::new("ACME-EU-2").is_ok());
    assert!(
        InvoicePrefix::new("ABCDEFGHIJKLMNOP").is_ok(),
        "16 bytes is the limit"
    );
}

#[test]
fn numbers_wider_than_six_digits_still_parse() {
    let number = InvoiceNumber::new(InvoicePrefix::invoices(), 2026, 1_234_567);
    assert_eq!(number.to_string(), "AER-2026-1234567");
    assert_eq!(number.to_string().parse::<InvoiceNumber>(), Ok(number));
}
