//! Invoices: worked examples with hand-written lines, coupons, tax, credit,
//! the lifecycle, immutability and the totals invariant.
//!
//! Amounts in cents are written `dollars_cents` (`100_50` is $100.50).
#![allow(clippy::inconsistent_digit_grouping)]

use aerolith_billing::invoice::INVOICE_COUPONS_MAX;
use aerolith_billing::{
    BillingInterval, Catalog, Coupon, CouponDuration, CouponId, CouponKind, CouponRedemption,
    Currency, InMemoryInvoiceNumberSequence, IncludedQuantity, Invoice, InvoiceBuilder,
    InvoiceError, InvoiceId, InvoiceLine, InvoiceLineKind, InvoiceNumberSequence, InvoicePeriod,
    InvoicePrefix, InvoiceStatus, MetricId, Money, MoneyError, PriceModel, PriceTier,
};
use aerolith_core::ManualClock;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

/// 2026-11-01T00:00:00Z.
pub const NOV_1_2026_UNIX_MS: i64 = 1_793_491_200_000;
/// 2026-12-01T00:00:00Z.
pub const DEC_1_2026_UNIX_MS: i64 = 1_796_083_200_000;
/// 2026-12-01T09:00:00Z, when the November invoices are issued.
pub const ISSUE_UNIX_MS: i64 = DEC_1_2026_UNIX_MS + 9 * 3_600_000;
/// 2027-01-01T00:00:00Z.
pub const JAN_1_2027_UNIX_MS: i64 = 1_798_761_600_000;

pub fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD)
}

pub fn november() -> InvoicePeriod {
    InvoicePeriod::new(NOV_1_2026_UNIX_MS, DEC_1_2026_UNIX_MS).expect("November is a valid period")
}

pub fn percent_coupon(id: &str, percent: Decimal, duration: CouponDuration) -> Coupon {
    Coupon {
        id: CouponId(id.to_owned()),
        kind: CouponKind::Percent { percent },
        duration,
    }
}

/// (kind name, description, quantity, unit price, amount in cents) of each line.
type LineSummary = (&'static str, String, Decimal, Option<Decimal>, i64);

pub fn summarize(invoice: &Invoice) -> Vec<LineSummary> {
    invoice
        .lines()
        .iter()
        .map(|line| {
            (
                line.kind.name(),
                line.description.clone(),
                line.quantity,
                line.unit_price,
                line.amount.amount_minor,
            )
        })
        .collect()
}

fn line(
    kind: &'static str,
    description: &str,
    quantity: Decimal,
    unit_price: Option<Decimal>,
    cents: i64,
) -> LineSummary {
    (kind, description.to_owned(), quantity, unit_price, cents)
}

/// The Starter overage month: 250,000 calls, 7.5 GB-months, 3 compute
/// hours and 12.345 GB of bandwidth.
pub fn starter_overage_month(catalog: &Catalog) -> InvoiceBuilder<'_> {
    let starter = catalog.plan("starter").expect("starter exists");
    InvoiceBuilder::new(
        InvoiceId("inv_acme_2026_11".into()),
        "acme",
        catalog.currency,
        november(),
    )
    .metric_names(catalog)
    .base_fee(starter, BillingInterval::Monthly)
    .usage(starter, MetricId::api_calls(), dec!(250_000))
    .usage(starter, MetricId::storage_gb_month(), dec!(7.5))
    .usage(starter, MetricId::compute_hours(), dec!(3))
    .usage(starter, MetricId::bandwidth_gb(), dec!(12.345))
}

#[test]
fn overage_month_on_starter() {
    let catalog = Catalog::default_catalog();
    let invoice = starter_overage_month(&catalog)
        .build()
        .expect("valid inputs");
    assert_eq!(
        summarize(&invoice),
        vec![
            line(
                "base_fee",
                "Starter plan (monthly)",
                dec!(1),
                Some(dec!(29)),
                29_00
            ),
            // 250,000 - 100,000 included = 150,000 × $0.00001 = $1.50
            line(
                "overage",
                "API calls overage: 250,000 used, 100,000 included",
                dec!(150_000),
                Some(dec!(0.00001)),
                1_50
            ),
            // 7.5 - 5 = 2.5 GB-months × $0.25 = $0.625 -> $0.62 (half-even)
            line(
                "overage",
                "Storage overage: 7.5 used, 5 included",
                dec!(2.5),
                Some(dec!(0.25)),
                62
            ),
            // 3 × $0.10 = $0.30 (nothing included)
            line(
                "overage",
                "Compute overage: 3 used, 0 included",
                dec!(3),
                Some(dec!(0.10)),
                30
            ),
            // 12.345 × $0.09 = $1.11105 -> $1.11
            line(
                "overage",
                "Bandwidth overage: 12.345 used, 0 included",
                dec!(12.345),
                Some(dec!(0.09)),
                1_11
            ),
        ]
    );
    assert_eq!(invoice.subtotal(), usd(32_53));
    assert_eq!(invoice.total(), usd(32_53));
    assert_eq!(invoice.amount_due(), usd(32_53));
    assert_eq!(invoice.status(), InvoiceStatus::Draft);
    assert_eq!(invoice.number(), None);
    assert_eq!(invoice.lines()[0].period, Some(november()));
    assert_eq!(
        invoice.lines()[1].period,
        Some(november()),
        "usage is metered over the period"
    );
}

#[test]
fn catalog_currency_must_match_the_invoice() {
    let catalog = Catalog::default_catalog();
    let error = InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::EUR, november())
        .metric_names(&catalog)
        .build()
        .expect_err("USD catalog, EUR invoice");
    assert_eq!(
        error,
        InvoiceError::Money(MoneyError::CurrencyMismatch {
            left: Currency::EUR,
            right: Currency::USD
        })
    );
    let invoice =
        InvoiceBuilder::for_catalog(InvoiceId("inv".into()), "acme", &catalog, november())
            .build()
            .expect("same currency");
    assert_eq!(invoice.currency(), Currency::USD);
}

#[test]
fn usage_within_the_allowance_adds_no_line() {
    let catalog = Catalog::default_catalog();
    let starter = catalog.plan("starter").expect("starter exists");
    let invoice = InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
        .base_fee(starter, BillingInterval::Monthly)
        .usage(starter, MetricId::api_calls(), dec!(100_000))
        .build()
        .expect("valid");
    assert_eq!(invoice.lines().len(), 1);
    assert_eq!(invoice.total(), usd(29_00));
}

#[test]
fn enterprise_calls_are_unlimited() {
    let catalog = Catalog::default_catalog();
    let enterprise = catalog.plan("enterprise").expect("enterprise exists");
    let invoice = InvoiceBuilder::new(InvoiceId("inv".into()), "bigco", Currency::USD, november())
        .base_fee(enterprise, BillingInterval::Monthly)
        .usage(enterprise, MetricId::api_calls(), dec!(900_000_000))
        .build()
        .expect("valid");
    assert_eq!(invoice.total(), usd(499_00));
}

#[test]
fn overage_without_a_price_is_an_error() {
    let mut catalog = Catalog::default_catalog();
    let starter = catalog
        .plans
        .iter_mut()
        .find(|plan| plan.id.as_str() == "starter")
        .expect("starter");
    starter.overage.remove(&MetricId::bandwidth_gb());
    let starter = catalog.plan("starter").expect("starter");
    let error = InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
        .usage(starter, MetricId::bandwidth_gb(), dec!(2))
        .build()
        .expect_err("bandwidth has no price");
    assert!(matches!(error, InvoiceError::NoOveragePrice { overage, .. } if overage == dec!(2)));
}

#[test]
fn negative_usage_is_an_error() {
    let catalog = Catalog::default_catalog();
    let starter = catalog.plan("starter").expect("starter");
    let error = InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
        .usage(starter, MetricId::api_calls(), dec!(-1))
        .build()
        .expect_err("negative usage");
    assert!(matches!(error, InvoiceError::NegativeUsage { used, .. } if used == dec!(-1)));
}

#[test]
fn missing_yearly_price_is_an_error() {
    let catalog = Catalog::default_catalog();
    let starter = catalog.plan("starter").expect("starter");
    let error = InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
        .base_fee(starter, BillingInterval::Yearly)
        .build()
        .expect_err("no yearly price");
    assert!(matches!(
        error,
        InvoiceError::NoBasePrice {
            interval: BillingInterval::Yearly,
            ..
        }
    ));
}

#[test]
fn graduated_and_volume_prices_on_the_same_usage() {
    let tiers = vec![
        PriceTier::up_to(10_000, dec!(0.001)),
        PriceTier::up_to(100_000, dec!(0.0005)),
        PriceTier::unbounded(dec!(0.0002)),
    ];
    let metric = MetricId::new("search_queries").expect("valid metric id");
    let build = |price: PriceModel| {
        InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
            .priced_usage(
                metric.clone(),
                dec!(250_000),
                IncludedQuantity::Limited(dec!(1_000)),
                price,
            )
            .build()
            .expect("valid")
    };
    // Overage 249,000: graduated = 10,000 × 0.001 + 90,000 × 0.0005 + 149,000 × 0.0002
    //                            = 10 + 45 + 29.80 = $84.80
    let graduated = build(PriceModel::Graduated {
        tiers: tiers.clone(),
    });
    let line = &graduated.lines()[0];
    assert_eq!(line.quantity, dec!(249_000));
    assert_eq!(
        line.unit_price, None,
        "three rates: explained by the components"
    );
    assert_eq!(line.amount, usd(84_80));
    let parts: Vec<(Decimal, Decimal)> = line
        .pricing
        .iter()
        .map(|part| (part.quantity, part.unit_price))
        .collect();
    assert_eq!(
        parts,
        vec![
            (dec!(10_000), dec!(0.001)),
            (dec!(90_000), dec!(0.0005)),
            (dec!(149_000), dec!(0.0002))
        ]
    );
    // Volume: all 249,000 at the third tier's $0.0002 = $49.80
    let volume = build(PriceModel::Volume { tiers });
    let line = &volume.lines()[0];
    assert_eq!(
        (line.quantity, line.unit_price, line.amount),
        (dec!(249_000), Some(dec!(0.0002)), usd(49_80))
    );
    assert!(line.pricing.is_empty());
}

#[test]
fn coupon_plus_tax_plus_credit() {
    let catalog = Catalog::default_catalog();
    let professional = catalog.plan("professional").expect("professional");
    let coupon = percent_coupon("LAUNCH10", dec!(10), CouponDuration::Once);
    let invoice = InvoiceBuilder::new(
        InvoiceId("inv_pro".into()),
        "acme",
        Currency::USD,
        november(),
    )
    .metric_names(&catalog)
    .base_fee(professional, BillingInterval::Monthly)
    .usage(professional, MetricId::api_calls(), dec!(5_150_000))
    .coupon(CouponRedemption::new(coupon, NOV_1_2026_UNIX_MS))
    .tax_rate_percent(dec!(8.25))
    .credit_available(usd(5_00))
    .build()
    .expect("valid");
    assert_eq!(
        summarize(&invoice),
        vec![
            line(
                "base_fee",
                "Professional plan (monthly)",
                dec!(1),
                Some(dec!(99)),
                99_00
            ),
            line(
                "overage",
                "API calls overage: 5,150,000 used, 5,000,000 included",
                dec!(150_000),
                Some(dec!(0.00001)),
                1_50
            ),
            // 10% of $100.50 = $10.05
            line(
                "discount",
                "Coupon LAUNCH10 (10% off)",
                dec!(100.50),
                Some(dec!(-0.1)),
                -10_05
            ),
            // 8.25% of ($100.50 - $10.05 = $90.45) = $7.462125 -> $7.46
            line("tax", "Tax (8.25%)", dec!(90.45), Some(dec!(0.0825)), 7_46),
            line(
                "credit",
                "Account credit applied",
                dec!(1),
                Some(dec!(-5)),
                -5_00
            ),
        ]
    );
    assert_eq!(invoice.subtotal(), usd(100_50));
    assert_eq!(invoice.discount_total(), usd(10_05));
    assert_eq!(invoice.tax_total(), usd(7_46));
    assert_eq!(invoice.credit_applied(), usd(5_00));
    assert_eq!(invoice.total(), usd(92_91));
    assert_eq!(invoice.amount_due(), usd(92_91));
    assert_eq!(invoice.remaining_credit(), Ok(usd(0)));
    assert_eq!(invoice.applied_coupons(), vec![CouponId("LAUNCH10".into())]);
}

fn adjustment_only(cents: i64) -> InvoiceBuilder<'static> {
    InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
        .adjustment("Consulting", usd(cents))
}

#[test]
fn tax_rounds_half_even() {
    // $10.50 × 5% = $0.525 -> $0.52; $10.70 × 5% = $0.535 -> $0.54
    let low = adjustment_only(10_50)
        .tax_rate_percent(dec!(5))
        .build()
        .expect("valid");
    assert_eq!(low.tax_total(), usd(52));
    let high = adjustment_only(10_70)
        .tax_rate_percent(dec!(5))
        .build()
        .expect("valid");
    assert_eq!(high.tax_total(), usd(54));
}

#[test]
fn tax_rate_must_be_a_percentage() {
    for rate in [dec!(-1), dec!(100.01)] {
        let error = adjustment_only(100)
            .tax_rate_percent(rate)
            .build()
            .expect_err("out of range");
        assert_eq!(
            error,
            InvoiceError::TaxRateOutOfRange { rate_percent: rate }
        );
    }
    assert!(adjustment_only(100)
        .tax_rate_percent(dec!(100))
        .build()
        .is_ok());
}

#[test]
fn amount_coupon_never_makes_the_total_negative() {
    let coupon = Coupon {
        id: CouponId("FIFTY".into()),
        kind: CouponKind::Amount { amount: usd(50_00) },
        duration: CouponDuration::Forever,
    };
    let invoice = adjustment_only(29_00)
        .coupon(CouponRedemption::new(coupon, NOV_1_2026_UNIX_MS))
        .tax_rate_percent(dec!(10))
        .build()
        .expect("valid");
    assert_eq!(invoice.discount_total(), usd(29_00));
    assert_eq!(invoice.tax_total(), usd(0));
    assert_eq!(invoice.total(), usd(0));
    assert_eq!(
        invoice.lines()[1].description,
        "Coupon FIFTY ($50.00 off), capped at the remaining subtotal"
    );
}

#[test]
fn stacked_percent_coupons_are_capped_at_the_subtotal() {
    let first = percent_coupon("SIXTY", dec!(60), CouponDuration::Forever);
    let second = percent_coupon("SIXTY2", dec!(60), CouponDuration::Forever);
    let invoice = adjustment_only(100_00)
        .coupon(CouponRedemption::new(first, NOV_1_2026_UNIX_MS))
        .coupon(CouponRedemption::new(second, NOV_1_2026_UNIX_MS))
        .build()
        .expect("valid");
    let discounts: Vec<i64> = invoice.lines()[1..]
        .iter()
        .map(|line| line.amount.amount_minor)
        .collect();
    assert_eq!(discounts, vec![-60_00, -40_00]);
    assert_eq!(invoice.total(), usd(0));
}

#[test]
fn once_coupon_applies_to_the_first_invoice_only() {
    let mut redemption = CouponRedemption::new(
        percent_coupon("ONCE", dec!(10), CouponDuration::Once),
        NOV_1_2026_UNIX_MS,
    );
    assert!(redemption.applies_to_period(NOV_1_2026_UNIX_MS));
    redemption.record_application();
    assert!(!redemption.applies_to_period(DEC_1_2026_UNIX_MS));
    let invoice = adjustment_only(100_00)
        .coupon(redemption)
        .build()
        .expect("valid");
    assert_eq!(invoice.discount_total(), usd(0));
    assert!(invoice.applied_coupons().is_empty());
}

#[test]
fn repeating_coupon_covers_periods_starting_within_its_months() {
    // Redeemed 2026-11-01 for 2 months: November and December invoices, not January.
    let mut redemption = CouponRedemption::new(
        percent_coupon("TWO", dec!(10), CouponDuration::Repeating { months: 2 }),
        NOV_1_2026_UNIX_MS,
    );
    assert!(redemption.applies_to_period(NOV_1_2026_UNIX_MS));
    redemption.record_application();
    assert!(redemption.applies_to_period(DEC_1_2026_UNIX_MS));
    redemption.record_application();
    assert!(!redemption.applies_to_period(JAN_1_2027_UNIX_MS));
    assert!(redemption.applies_to_period(JAN_1_2027_UNIX_MS - 1));
}

#[test]
fn forever_coupon_always_applies() {
    let mut redemption = CouponRedemption::new(
        percent_coupon("ALWAYS", dec!(10), CouponDuration::Forever),
        NOV_1_2026_UNIX_MS,
    );
    for _ in 0..100 {
        redemption.record_application();
    }
    assert!(redemption.applies_to_period(JAN_1_2027_UNIX_MS * 2));
}

#[test]
fn invalid_coupons_are_refused() {
    let build = |coupon: Coupon| {
        adjustment_only(100)
            .coupon(CouponRedemption::new(coupon, 0))
            .build()
    };
    let zero = percent_coupon("ZERO", dec!(0), CouponDuration::Once);
    assert!(matches!(
        build(zero),
        Err(InvoiceError::CouponPercentOutOfRange { .. })
    ));
    let over = percent_coupon("OVER", dec!(100.5), CouponDuration::Once);
    assert!(matches!(
        build(over),
        Err(InvoiceError::CouponPercentOutOfRange { .. })
    ));
    let euros = Coupon {
        id: CouponId("EUR".into()),
        kind: CouponKind::Amount {
            amount: Money::new(500, Currency::EUR),
        },
        duration: CouponDuration::Once,
    };
    assert!(matches!(
        build(euros),
        Err(InvoiceError::InvalidCouponAmount { .. })
    ));
    let negative = Coupon {
        id: CouponId("NEG".into()),
        kind: CouponKind::Amount { amount: usd(-5) },
        duration: CouponDuration::Once,
    };
    assert!(matches!(
        build(negative),
        Err(InvoiceError::InvalidCouponAmount { .. })
    ));
    let twice = percent_coupon("TWICE", dec!(5), CouponDuration::Once);
    let error = adjustment_only(100)
        .coupon(CouponRedemption::new(twice.clone(), 0))
        .coupon(CouponRedemption::new(twice, 0))
        .build()
        .expect_err("same coupon twice");
    assert_eq!(
        error,
        InvoiceError::DuplicateCoupon {
            coupon: CouponId("TWICE".into())
        }
    );
}

#[test]
fn coupon_count_is_bounded() {
    let mut builder = adjustment_only(100_00);
    for index in 0..INVOICE_COUPONS_MAX {
        builder = builder.coupon(CouponRedemption::new(
            percent_coupon(&format!("C{index}"), dec!(1), CouponDuration::Forever),
            0,
        ));
    }
    let mut invoice = builder.build().expect("at the limit");
    let error = invoice
        .add_coupon(CouponRedemption::new(
            percent_coupon("ONE_MORE", dec!(1), CouponDuration::Forever),
            0,
        ))
        .expect_err("one past the limit");
    assert_eq!(
        error,
        InvoiceError::TooMany {
            what: "coupons",
            max: INVOICE_COUPONS_MAX
        }
    );
}

#[test]
fn credit_is_applied_after_tax_up_to_the_amount_due() {
    let invoice = adjustment_only(20_00)
        .tax_rate_percent(dec!(10))
        .credit_available(usd(100_00))
        .build()
        .expect("valid");
    assert_eq!(invoice.tax_total(), usd(2_00));
    assert_eq!(invoice.credit_applied(), usd(22_00));
    assert_eq!(invoice.total(), usd(0));
    assert_eq!(invoice.amount_due(), usd(0));
    assert_eq!(invoice.remaining_credit(), Ok(usd(78_00)));
}

#[test]
fn negative_credit_and_foreign_currency_credit_are_refused() {
    let error = adjustment_only(100)
        .credit_available(usd(-1))
        .build()
        .expect_err("negative");
    assert_eq!(error, InvoiceError::NegativeCredit { credit: usd(-1) });
    let error = adjustment_only(100)
        .credit_available(Money::new(1, Currency::EUR))
        .build()
        .expect_err("euros");
    assert!(matches!(
        error,
        InvoiceError::Money(MoneyError::CurrencyMismatch { .. })
    ));
}

#[test]
fn upgrade_on_day_ten_is_billed_from_proration_inputs() {
    // Proration amounts come from the subscription; the invoice lists them as given.
    let catalog = Catalog::default_catalog();
    let professional = catalog.plan("professional").expect("professional");
    let rest =
        InvoicePeriod::new(NOV_1_2026_UNIX_MS + 9 * 86_400_000, DEC_1_2026_UNIX_MS).expect("valid");
    let invoice = InvoiceBuilder::new(
        InvoiceId("inv_upgrade".into()),
        "acme",
        Currency::USD,
        november(),
    )
    .proration(
        "Unused time on Starter (21 of 30 days)",
        usd(-20_30),
        Some(rest),
    )
    .proration(
        "Remaining time on Professional (21 of 30 days)",
        usd(69_30),
        Some(rest),
    )
    .base_fee(professional, BillingInterval::Monthly)
    .build()
    .expect("valid");
    assert_eq!(
        summarize(&invoice),
        vec![
            line(
                "proration",
                "Unused time on Starter (21 of 30 days)",
                dec!(1),
                Some(dec!(-20.30)),
                -20_30
            ),
            line(
                "proration",
                "Remaining time on Professional (21 of 30 days)",
                dec!(1),
                Some(dec!(69.30)),
                69_30
            ),
            line(
                "base_fee",
                "Professional plan (monthly)",
                dec!(1),
                Some(dec!(99)),
                99_00
            ),
        ]
    );
    assert_eq!(invoice.total(), usd(148_00));
    assert_eq!(invoice.lines()[0].period, Some(rest));
}

#[test]
fn a_negative_subtotal_gives_the_tax_back_takes_no_credit_and_has_nothing_due() {
    let invoice = adjustment_only(-10_00)
        .tax_rate_percent(dec!(10))
        .credit_available(usd(5_00))
        .build()
        .expect("valid");
    assert_eq!(invoice.tax_total(), usd(-1_00));
    assert_eq!(invoice.credit_applied(), usd(0));
    assert_eq!(invoice.total(), usd(-11_00));
    assert_eq!(invoice.amount_due(), usd(0));
    invoice
        .check_totals()
        .expect("total is the sum of the lines");
}

#[test]
fn editing_a_draft_recomputes_discount_tax_and_credit() {
    let coupon = percent_coupon("TEN", dec!(10), CouponDuration::Forever);
    let mut invoice = adjustment_only(100_00)
        .coupon(CouponRedemption::new(coupon, 0))
        .tax_rate_percent(dec!(20))
        .build()
        .expect("valid");
    assert_eq!(invoice.total(), usd(108_00)); // 100 - 10 + 18
    invoice
        .add_line(InvoiceLine::adjustment("Extra", usd(100_00)))
        .expect("draft is editable");
    assert_eq!(invoice.discount_total(), usd(20_00));
    assert_eq!(invoice.tax_total(), usd(36_00));
    assert_eq!(invoice.total(), usd(216_00));
    let removed = invoice.remove_line(0).expect("charge line");
    assert_eq!(removed.description, "Consulting");
    assert_eq!(invoice.total(), usd(108_00));
    invoice
        .remove_coupon(&CouponId("TEN".into()))
        .expect("coupon is there");
    invoice.set_tax_rate_percent(dec!(0)).expect("draft");
    invoice.set_credit_available(usd(30_00)).expect("draft");
    assert_eq!(invoice.total(), usd(70_00));
    assert_eq!(invoice.remaining_credit(), Ok(usd(0)));
    invoice.check_totals().expect("totals match lines");
}

#[test]
fn computed_lines_cannot_be_added_or_removed_by_hand() {
    let mut invoice = adjustment_only(100_00)
        .tax_rate_percent(dec!(10))
        .build()
        .expect("valid");
    let mut tax = invoice.lines()[1].clone();
    assert_eq!(
        invoice.remove_line(1),
        Err(InvoiceError::ComputedLine { kind: "tax" })
    );
    tax.kind = InvoiceLineKind::Credit;
    assert_eq!(
        invoice.add_line(tax),
        Err(InvoiceError::ComputedLine { kind: "credit" })
    );
    assert_eq!(
        invoice.remove_line(9),
        Err(InvoiceError::NoSuchLine { index: 9, len: 2 })
    );
}

#[test]
fn lines_in_another_currency_are_refused() {
    let mut invoice = adjustment_only(100).build().expect("valid");
    let error = invoice
        .add_line(InvoiceLine::adjustment(
            "Euros",
            Money::new(1, Currency::EUR),
        ))
        .expect_err("euros");
    assert!(matches!(
        error,
        InvoiceError::Money(MoneyError::CurrencyMismatch { .. })
    ));
    assert_eq!(invoice.lines().len(), 1, "a failed edit changes nothing");
}

#[test]
fn empty_descriptions_and_reversed_periods_are_refused() {
    let mut invoice = adjustment_only(100).build().expect("valid");
    assert_eq!(
        invoice.add_line(InvoiceLine::adjustment("", usd(1))),
        Err(InvoiceError::TextLength {
            field: "description",
            len_bytes: 0
        })
    );
    assert_eq!(
        InvoicePeriod::new(DEC_1_2026_UNIX_MS, NOV_1_2026_UNIX_MS),
        Err(InvoiceError::InvalidPeriod {
            start_unix_ms: DEC_1_2026_UNIX_MS,
            end_unix_ms: NOV_1_2026_UNIX_MS
        })
    );
}

fn finalized(
    invoice: &mut Invoice,
    numbers: &dyn InvoiceNumberSequence,
    clock: &ManualClock,
) -> String {
    invoice
        .finalize(numbers, &InvoicePrefix::invoices(), clock)
        .expect("draft finalizes")
        .to_string()
}

#[test]
fn finalize_assigns_sequential_numbers_per_year() {
    let catalog = Catalog::default_catalog();
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut first = starter_overage_month(&catalog).build().expect("valid");
    let mut second = adjustment_only(100).build().expect("valid");
    assert_eq!(finalized(&mut first, &numbers, &clock), "AER-2026-000001");
    assert_eq!(finalized(&mut second, &numbers, &clock), "AER-2026-000002");
    assert_eq!(first.status(), InvoiceStatus::Finalized);
    assert_eq!(first.issued_at_unix_ms(), Some(ISSUE_UNIX_MS));
    clock.set_unix_ms(JAN_1_2027_UNIX_MS);
    let mut next_year = adjustment_only(100).build().expect("valid");
    assert_eq!(
        finalized(&mut next_year, &numbers, &clock),
        "AER-2027-000001"
    );
}

#[test]
fn every_edit_of_a_finalized_invoice_is_refused() {
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut invoice = adjustment_only(100_00).build().expect("valid");
    finalized(&mut invoice, &numbers, &clock);
    let before = invoice.clone();
    let immutable = |status| InvoiceError::Immutable {
        id: InvoiceId("inv".into()),
        status,
    };
    for status in [InvoiceStatus::Finalized, InvoiceStatus::Paid] {
        assert_eq!(
            invoice.add_line(InvoiceLine::adjustment("More", usd(1))),
            Err(immutable(status))
        );
        assert_eq!(invoice.remove_line(0).map(|_| ()), Err(immutable(status)));
        assert_eq!(
            invoice.set_tax_rate_percent(dec!(5)),
            Err(immutable(status))
        );
        assert_eq!(
            invoice.add_coupon(CouponRedemption::new(
                percent_coupon("X", dec!(5), CouponDuration::Once),
                0
            )),
            Err(immutable(status))
        );
        assert_eq!(
            invoice.remove_coupon(&CouponId("X".into())).map(|_| ()),
            Err(immutable(status))
        );
        assert_eq!(invoice.set_credit_available(usd(1)), Err(immutable(status)));
        assert_eq!(
            invoice
                .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
                .map(|_| ()),
            Err(immutable(status))
        );
        if status == InvoiceStatus::Finalized {
            assert_eq!(invoice, before, "refused edits change nothing");
            invoice
                .pay("pay_1", &clock)
                .expect("finalized invoice can be paid");
        }
    }
    assert_eq!(
        numbers
            .last_number(&InvoicePrefix::invoices(), 2026)
            .map(|number| number.sequence()),
        Some(1)
    );
}

#[test]
fn pay_records_reference_time_and_clears_amount_due() {
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut invoice = adjustment_only(100_00).build().expect("valid");
    finalized(&mut invoice, &numbers, &clock);
    clock.advance(std::time::Duration::from_secs(3_600));
    invoice.pay("bank_transfer_42", &clock).expect("pay");
    assert_eq!(invoice.status(), InvoiceStatus::Paid);
    assert_eq!(invoice.payment_reference(), Some("bank_transfer_42"));
    assert_eq!(invoice.paid_at_unix_ms(), Some(ISSUE_UNIX_MS + 3_600_000));
    assert_eq!(invoice.amount_due(), usd(0));
    assert_eq!(invoice.total(), usd(100_00));
}

#[test]
fn status_transitions_outside_the_lifecycle_are_refused() {
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let id = || InvoiceId("inv".into());
    let mut draft = adjustment_only(100).build().expect("valid");
    assert_eq!(
        draft.pay("ref", &clock),
        Err(InvoiceError::InvalidTransition {
            id: id(),
            from: InvoiceStatus::Draft,
            to: InvoiceStatus::Paid
        })
    );
    assert_eq!(
        draft.void("mistake", &clock),
        Err(InvoiceError::InvalidTransition {
            id: id(),
            from: InvoiceStatus::Draft,
            to: InvoiceStatus::Void
        })
    );

    let mut paid = adjustment_only(100).build().expect("valid");
    finalized(&mut paid, &numbers, &clock);
    assert_eq!(
        paid.pay("", &clock),
        Err(InvoiceError::TextLength {
            field: "payment reference",
            len_bytes: 0
        })
    );
    paid.pay("ref", &clock).expect("pay");
    assert_eq!(
        paid.void("too late", &clock),
        Err(InvoiceError::InvalidTransition {
            id: id(),
            from: InvoiceStatus::Paid,
            to: InvoiceStatus::Void
        })
    );
    assert_eq!(
        paid.pay("again", &clock),
        Err(InvoiceError::InvalidTransition {
            id: id(),
            from: InvoiceStatus::Paid,
            to: InvoiceStatus::Paid
        })
    );

    let mut voided = adjustment_only(100).build().expect("valid");
    finalized(&mut voided, &numbers, &clock);
    voided
        .void("issued twice by mistake", &clock)
        .expect("unpaid invoice can be voided");
    assert_eq!(voided.status(), InvoiceStatus::Void);
    assert_eq!(voided.amount_due(), usd(0));
    assert_eq!(voided.void_reason(), Some("issued twice by mistake"));
    assert_eq!(
        voided.pay("ref", &clock),
        Err(InvoiceError::InvalidTransition {
            id: id(),
            from: InvoiceStatus::Void,
            to: InvoiceStatus::Paid
        })
    );
}

#[test]
fn tampered_totals_fail_finalize_without_taking_a_number() {
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let invoice = adjustment_only(100_00).build().expect("valid");
    let mut json: serde_json::Value =
        serde_json::from_str(&invoice.to_json()).expect("invoice JSON");
    json["total"]["amount_minor"] = serde_json::json!(9_000);
    let mut tampered = Invoice::from_json(&json.to_string()).expect("still a well-formed invoice");
    let error = tampered
        .finalize(&numbers, &InvoicePrefix::invoices(), &clock)
        .expect_err("totals disagree");
    assert!(
        matches!(error, InvoiceError::TotalsMismatch { .. }),
        "{error:?}"
    );
    assert_eq!(
        numbers.last_number(&InvoicePrefix::invoices(), 2026),
        None,
        "no number was taken"
    );
    assert_eq!(tampered.status(), InvoiceStatus::Draft);
}

#[test]
fn json_round_trips_every_field() {
    let catalog = Catalog::default_catalog();
    let numbers = InMemoryInvoiceNumberSequence::new();
    let clock = ManualClock::new(ISSUE_UNIX_MS);
    let mut invoice = starter_overage_month(&catalog)
        .coupon(CouponRedemption::new(
            percent_coupon("TEN", dec!(10), CouponDuration::Once),
            0,
        ))
        .tax_rate_percent(dec!(8.25))
        .build()
        .expect("valid");
    finalized(&mut invoice, &numbers, &clock);
    let json = invoice.to_json();
    assert!(json.contains(r#""number": "AER-2026-000001""#), "{json}");
    assert!(json.contains(r#""unit_price": "0.00001""#), "{json}");
    assert_eq!(Invoice::from_json(&json).expect("reads back"), invoice);
}

fn arbitrary_charges() -> impl Strategy<Value = Vec<i64>> {
    proptest::collection::vec(-50_000_i64..1_000_000, 0..12)
}

proptest! {
    #[test]
    fn total_always_equals_the_sum_of_lines(
        charges in arbitrary_charges(),
        calls in 0_u64..50_000_000,
        percent in proptest::option::of(1_i64..=100),
        amount_off in proptest::option::of(1_i64..100_000),
        tax_hundredths in 0_i64..3_000,
        credit in 0_i64..500_000,
    ) {
        let catalog = Catalog::default_catalog();
        let starter = catalog.plan("starter").expect("starter");
        let mut builder = InvoiceBuilder::new(InvoiceId("inv".into()), "acme", Currency::USD, november())
            .base_fee(starter, BillingInterval::Monthly)
            .usage(starter, MetricId::api_calls(), Decimal::from(calls))
            .tax_rate_percent(Decimal::new(tax_hundredths, 2))
            .credit_available(usd(credit));
        for (index, cents) in charges.iter().enumerate() {
            builder = builder.adjustment(format!("Adjustment {index}"), usd(*cents));
        }
        if let Some(percent) = percent {
            builder = builder.coupon(CouponRedemption::new(percent_coupon("P", Decimal::from(percent), CouponDuration::Forever), 0));
        }
        if let Some(cents) = amount_off {
            let coupon = Coupon { id: CouponId("A".into()), kind: CouponKind::Amount { amount: usd(cents) }, duration: CouponDuration::Forever };
            builder = builder.coupon(CouponRedemption::new(coupon, 0));
        }
        let invoice = builder.build()?;
        let sum: i64 = invoice.lines().iter().map(|line| line.amount.amount_minor).sum();
        prop_assert_eq!(invoice.total().amount_minor, sum);
        prop_assert!(invoice.discount_total().amount_minor <= invoice.subtotal().amount_minor.max(0));
        prop_assert!(invoice.credit_applied().amount_minor <= credit);
        prop_assert!(invoice.amount_due().amount_minor >= 0);
        if invoice.subtotal().is_positive() {
            prop_assert!(invoice.total().amount_minor >= 0, "coupons and credit never make a positive invoice negative");
        }
        invoice.check_totals()?;
    }
}

#[test]
fn a_coupon_with_nothing_to_discount_is_not_used_up() {
    let trial = InvoiceBuilder::new(
        InvoiceId("inv_trial".into()),
        "acme",
        Currency::USD,
        november(),
    )
    .adjustment("Trial, nothing to pay", usd(0))
    .coupon(CouponRedemption::new(
        percent_coupon("FIRST50", dec!(50), CouponDuration::Once),
        NOV_1_2026_UNIX_MS,
    ))
    .build()
    .expect("valid");
    assert_eq!(trial.lines().len(), 1, "no $0.00 discount line");
    assert!(trial.applied_coupons().is_empty());
    let first = percent_coupon("FIRST", dec!(100), CouponDuration::Forever);
    let second = percent_coupon("SECOND", dec!(10), CouponDuration::Forever);
    let invoice = adjustment_only(10_00)
        .coupon(CouponRedemption::new(first, 0))
        .coupon(CouponRedemption::new(second, 0))
        .build()
        .expect("valid");
    assert_eq!(invoice.applied_coupons(), vec![CouponId("FIRST".into())]);
    assert_eq!(invoice.total(), usd(0));
}
