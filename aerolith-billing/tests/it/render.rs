//! Snapshots of the plain-text invoice: the expected documents are written
//! out in full, so any change of layout or numbers shows up here.

use aerolith_billing::invoice::TEXT_WIDTH;
use aerolith_billing::{
    Catalog, CouponDuration, CouponRedemption, Currency, InMemoryInvoiceNumberSequence,
    IncludedQuantity, Invoice, InvoiceBuilder, InvoiceId, InvoicePrefix, MetricId, PriceModel,
    PriceTier,
};
use aerolith_core::ManualClock;
use rust_decimal_macros::dec;

use crate::invoice::{
    november, percent_coupon, starter_overage_month, usd, ISSUE_UNIX_MS, NOV_1_2026_UNIX_MS,
};

const STARTER_OVERAGE_MONTH: &str = "\
INVOICE AER-2026-000001                                              FINALIZED
Invoice id:  inv_acme_2026_11
Tenant:      acme
Period:      2026-11-01 00:00 UTC to 2026-12-01 00:00 UTC
Issued:      2026-12-01 09:00 UTC
Currency:    USD
==============================================================================
Description                                Quantity   Unit price        Amount
------------------------------------------------------------------------------
Starter plan (monthly)                            1       $29.00        $29.00
API calls overage: 250,000 used,            150,000     $0.00001         $1.50
  100,000 included
Storage overage: 7.5 used, 5 included           2.5        $0.25         $0.62
Compute overage: 3 used, 0 included               3        $0.10         $0.30
Bandwidth overage: 12.345 used, 0            12.345        $0.09         $1.11
  included
Coupon WELCOME10 (10% off)                   $32.53          10%        -$3.25
Tax (8.25%)                                  $29.28        8.25%         $2.42
Account credit applied                            1       -$5.00        -$5.00
------------------------------------------------------------------------------
                                            Subtotal                    $32.53
                                            Discounts                   -$3.25
                                            Tax                          $2.42
                                            Credit applied              -$5.00
                                            Total                       $26.70
                                            Amount due                  $26.70
==============================================================================
";

const PAID_TIERED: &str = "\
INVOICE AER-2026-000001                                                   PAID
Invoice id:  inv_search
Tenant:      globex
Period:      2026-11-01 00:00 UTC to 2026-12-01 00:00 UTC
Issued:      2026-12-01 09:00 UTC
Currency:    USD
==============================================================================
Description                                Quantity   Unit price        Amount
------------------------------------------------------------------------------
search_queries overage: 25,000 used,         24,000       tiered        $19.00
  1,000 included
  tier 1: 10,000 x $0.001 = $10.00
  tier 2: 14,000 x $0.0005 + $2.00 fee = $9.00
------------------------------------------------------------------------------
                                            Subtotal                    $19.00
                                            Total                       $19.00
                                            Amount due                   $0.00
==============================================================================
Paid 2026-12-03 14:30 UTC, reference wire_2026_12_03
";

fn assert_fits_width(text: &str) {
    for row in text.lines() {
        assert!(
            row.chars().count() <= TEXT_WIDTH,
            "row wider than {TEXT_WIDTH}: {row:?}"
        );
        assert_eq!(row, row.trim_end(), "no trailing spaces");
    }
}

/// Starter overage month with a 10% coupon, 8.25% tax and $5 credit:
/// subtotal $32.53, 10% = $3.253 -> $3.25, tax 8.25% of $29.28 = $2.4156 -> $2.42,
/// total $32.53 - $3.25 + $2.42 - $5.00 = $26.70.
fn representative_invoice() -> Invoice {
    let catalog = Catalog::default_catalog();
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut invoice = starter_overage_month(&catalog)
        .coupon(CouponRedemption::new(
            percent_coupon("WELCOME10", dec!(10), CouponDuration::Once),
            NOV_1_2026_UNIX_MS,
        ))
        .tax_rate_percent(dec!(8.25))
        .credit_available(usd(500))
        .build()
        .expect("valid");
    invoice
        .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
        .expect("finalizes");
    invoice
}

#[test]
fn representative_invoice_renders_as_the_snapshot() {
    let text = representative_invoice().render_text();
    assert_eq!(text, STARTER_OVERAGE_MONTH, "\n{text}");
    assert_fits_width(&text);
}

#[test]
fn paid_tiered_invoice_lists_its_price_components() {
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let tiers = vec![
        PriceTier::up_to(10_000, dec!(0.001)),
        PriceTier::unbounded(dec!(0.0005)).with_flat_fee(dec!(2)),
    ];
    let mut invoice = InvoiceBuilder::new(
        InvoiceId("inv_search".into()),
        "globex",
        Currency::USD,
        november(),
    )
    .priced_usage(
        MetricId::new("search_queries").expect("valid id"),
        dec!(25_000),
        IncludedQuantity::Limited(dec!(1_000)),
        PriceModel::Graduated { tiers },
    )
    .build()
    .expect("valid");
    invoice
        .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
        .expect("finalizes");
    clock.set_unix_ms(ISSUE_UNIX_MS + 2 * 86_400_000 + 5 * 3_600_000 + 30 * 60_000);
    invoice.pay("wire_2026_12_03", &clock).expect("pay");
    let text = invoice.render_text();
    assert_eq!(text, PAID_TIERED, "\n{text}");
    assert_fits_width(&text);
}

#[test]
fn drafts_render_without_a_number() {
    let draft = InvoiceBuilder::new(
        InvoiceId("inv_draft".into()),
        "acme",
        Currency::USD,
        november(),
    )
    .adjustment(
        "A description long enough that it has to wrap onto a second row of the invoice",
        usd(1),
    )
    .build()
    .expect("valid");
    let text = draft.render_text();
    assert!(text.starts_with("INVOICE (draft, not numbered)"), "{text}");
    assert!(text
        .lines()
        .next()
        .is_some_and(|first| first.ends_with("DRAFT")));
    assert!(!text.contains("Issued:"));
    assert_fits_width(&text);
}
