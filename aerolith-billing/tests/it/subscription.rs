//! Subscriptions, proration and dunning through the public API, on a
//! [`ManualClock`]: worked examples with hand-computed lines.

use std::time::Duration;

use aerolith_billing::dunning::{DunningAction, DunningPhase, DunningPolicy, DunningState};
use aerolith_billing::payment::test_provider::{
    TestProvider, CARD_DECLINED, CARD_SUCCEEDS, CARD_TRANSIENT_FAILURE,
};
use aerolith_billing::payment::{ChargeRequest, IdempotentPayments, PaymentMethod, PaymentOutcome};
use aerolith_billing::period::Interval;
use aerolith_billing::proration::{apply_change, preview_change, PlanChange, ProrationLine};
use aerolith_billing::subscription::{
    CancelReason, StartOptions, Subscription, SubscriptionEvent, SubscriptionEventKind,
    SubscriptionId, SubscriptionStatus,
};
use aerolith_billing::{Currency, InvoiceBuilder, InvoiceId, InvoicePeriod, Money};
use aerolith_core::{Clock, ManualClock};

const DAY: Duration = Duration::from_secs(86_400);
const DAY_MS: i64 = 86_400_000;
// 2025-06-01T00:00:00Z; June has 30 days.
const JUN_1: i64 = 1_748_736_000_000;

fn start(clock: &ManualClock, trial_days: Option<u32>) -> Subscription {
    Subscription::start(
        StartOptions {
            id: SubscriptionId("sub_acme".into()),
            tenant: "acme".into(),
            plan_id: "starter".into(),
            interval: Interval::Monthly,
            trial_days,
            has_payment_method: false,
        },
        clock.now_unix_ms(),
    )
    .expect("starts")
    .0
}

#[test]
fn upgrade_on_day_ten_of_thirty_invoices_the_previewed_lines() {
    let clock = ManualClock::new(JUN_1);
    let mut sub = start(&clock, None);
    clock.advance(DAY * 9); // the start of day 10: 21 of 30 days remain
    let change = PlanChange {
        new_plan_id: "professional".into(),
        old_price_minor: 2_900,
        new_price_minor: 9_900,
    };
    let preview = preview_change(&sub, &change, clock.now_unix_ms()).expect("previews");
    let period_end = JUN_1 + 30 * DAY_MS;
    // Starter $29 * 21/30 = $20.30 credit; Professional $99 * 21/30 = $69.30.
    let expected = vec![
        ProrationLine {
            description: "Unused time on starter".into(),
            amount_minor: -2_030,
            from_unix_ms: JUN_1 + 9 * DAY_MS,
            to_unix_ms: period_end,
        },
        ProrationLine {
            description: "Remaining time on professional".into(),
            amount_minor: 6_930,
            from_unix_ms: JUN_1 + 9 * DAY_MS,
            to_unix_ms: period_end,
        },
    ];
    assert_eq!(preview.lines, expected);
    assert_eq!(preview.net_minor, 4_900);
    let (applied, event) = apply_change(&mut sub, &change, clock.now_unix_ms()).expect("applies");
    assert_eq!(applied, preview);
    assert_eq!(
        event.kind,
        SubscriptionEventKind::PlanChanged {
            from_plan_id: "starter".into(),
            to_plan_id: "professional".into()
        }
    );
    // The period does not move; the next renewal is still on Jul 1.
    assert_eq!(sub.current_period_end_unix_ms, period_end);
}

#[test]
fn proration_lines_invoice_exactly_the_previewed_net() {
    let clock = ManualClock::new(JUN_1);
    let mut sub = start(&clock, None);
    clock.advance(DAY * 9);
    let change = PlanChange {
        new_plan_id: "professional".into(),
        old_price_minor: 2_900,
        new_price_minor: 9_900,
    };
    let preview = preview_change(&sub, &change, clock.now_unix_ms()).expect("previews");
    let (applied, _) = apply_change(&mut sub, &change, clock.now_unix_ms()).expect("applies");
    let period = InvoicePeriod::new(
        sub.current_period_start_unix_ms,
        sub.current_period_end_unix_ms,
    )
    .expect("valid period");
    let mut builder = InvoiceBuilder::new(
        InvoiceId("inv_change".into()),
        "acme",
        Currency::USD,
        period,
    );
    for line in applied.invoice_lines(Currency::USD) {
        builder = builder.proration(line.description.clone(), line.amount, line.period);
    }
    let invoice = builder.build().expect("builds");
    assert_eq!(invoice.lines(), &preview.invoice_lines(Currency::USD)[..]);
    assert_eq!(invoice.total(), Money::new(4_900, Currency::USD));
}

#[test]
fn downgrade_a_third_into_the_month_credits_the_difference() {
    let clock = ManualClock::new(JUN_1);
    let mut sub = start(&clock, None);
    sub.plan_id = "professional".into();
    clock.advance(DAY * 10); // 20 of 30 days remain
    let change = PlanChange {
        new_plan_id: "starter".into(),
        old_price_minor: 9_900,
        new_price_minor: 2_900,
    };
    let (applied, _) = apply_change(&mut sub, &change, clock.now_unix_ms()).expect("applies");
    // $99 * 20/30 = $66.00 credit; $29 * 20/30 = $19.333.. -> $19.33.
    let amounts: Vec<i64> = applied.lines.iter().map(|l| l.amount_minor).collect();
    assert_eq!(amounts, vec![-6_600, 1_933]);
    assert_eq!(applied.net_minor, -4_667);
}

#[test]
fn trial_converts_then_renews_monthly_until_canceled_at_period_end() {
    let clock = ManualClock::new(JUN_1);
    let mut sub = start(&clock, Some(14));
    clock.advance(DAY * 3);
    sub.attach_payment_method(clock.now_unix_ms())
        .expect("attaches");
    clock.advance(DAY * 11);
    let events = sub.advance(clock.now_unix_ms()).expect("advances");
    assert_eq!(events[0].kind, SubscriptionEventKind::TrialConverted);
    // Paid periods anchor on the trial end, Jun 15.
    assert_eq!(sub.current_period_start_unix_ms, JUN_1 + 14 * DAY_MS);
    assert_eq!(sub.current_period_end_unix_ms, JUN_1 + 44 * DAY_MS); // Jul 15
    clock.advance(DAY * 31);
    let events = sub.advance(clock.now_unix_ms()).expect("advances");
    assert!(matches!(
        events[..],
        [SubscriptionEvent {
            kind: SubscriptionEventKind::Renewed { .. },
            ..
        }]
    ));
    sub.cancel_at_period_end(clock.now_unix_ms())
        .expect("schedules");
    clock.advance(DAY * 60);
    let events = sub.advance(clock.now_unix_ms()).expect("advances");
    assert_eq!(
        events.last().map(|e| e.kind.clone()),
        Some(SubscriptionEventKind::Canceled {
            reason: CancelReason::PeriodEnded
        })
    );
    assert_eq!(sub.status, SubscriptionStatus::Canceled);
}

fn request(key: &str, card: &str) -> ChargeRequest {
    ChargeRequest {
        invoice_id: "inv_0001".into(),
        amount_minor: 2_900,
        currency: "USD".into(),
        idempotency_key: key.into(),
        method: PaymentMethod::Card {
            number: card.into(),
        },
    }
}

/// The worked example: the renewal payment fails, retries fail (one of them
/// transiently), the tenant is suspended on day 10, and a payment with a new
/// card on day 12 restores everything. Every step is audited.
#[test]
fn failed_payment_ends_in_suspension_and_then_recovery() {
    let clock = ManualClock::new(JUN_1);
    let mut sub = start(&clock, None);
    sub.attach_payment_method(clock.now_unix_ms())
        .expect("attaches");
    let payments = IdempotentPayments::new(TestProvider::new());
    let mut audit: Vec<String> = Vec::new();

    // The renewal on Jul 1 (period Jul 1 - Aug 1) is charged and declined.
    clock.set_unix_ms(JUN_1 + 30 * DAY_MS);
    for e in sub.advance(clock.now_unix_ms()).expect("renews") {
        audit.push(format!("{:?}", e.kind));
    }
    let first = payments
        .charge(&request("inv_0001/attempt-0", CARD_DECLINED))
        .expect("answers");
    assert!(matches!(first, PaymentOutcome::Declined { .. }));
    let event = sub.payment_failed(clock.now_unix_ms()).expect("past due");
    audit.push(format!("{:?}", event.kind));
    let mut dunning = DunningState::begin(
        sub.id.clone(),
        &sub.tenant,
        "inv_0001",
        DunningPolicy::default(),
        clock.now_unix_ms(),
    )
    .expect("valid policy");

    // Walk day by day through the dunning schedule, performing its actions.
    let mut attempts = Vec::new();
    for _ in 0..10 {
        clock.advance(DAY);
        for e in dunning.advance(clock.now_unix_ms()) {
            audit.push(format!("{:?}", e.action));
            match e.action {
                DunningAction::RetryPayment { attempt } => {
                    // The customer's card now fails transiently once, then
                    // keeps being declined.
                    let card = if attempt == 2 {
                        CARD_TRANSIENT_FAILURE
                    } else {
                        CARD_DECLINED
                    };
                    let key = format!("inv_0001/attempt-{attempt}");
                    let outcome = payments.charge(&request(&key, card));
                    attempts.push((attempt, outcome.is_err_and(|e| e.is_transient())));
                }
                DunningAction::Suspend => {
                    sub.suspend(e.at_unix_ms).expect("suspends");
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
    }
    assert_eq!(
        attempts,
        vec![(1, false), (2, true), (3, false), (4, false)]
    );
    assert_eq!(sub.status, SubscriptionStatus::Suspended);
    assert_eq!(dunning.phase, DunningPhase::Suspended);

    // Day 12: the customer pays with a working card.
    clock.advance(DAY * 2);
    let paid = payments
        .charge(&request("inv_0001/manual-1", CARD_SUCCEEDS))
        .expect("charges");
    assert!(matches!(paid, PaymentOutcome::Succeeded { .. }));
    let restore = dunning
        .payment_succeeded(clock.now_unix_ms())
        .expect("restores");
    audit.push(format!("{:?}", restore.action));
    let event = sub.payment_succeeded(clock.now_unix_ms()).expect("active");
    audit.push(format!("{:?}", event.kind));
    assert_eq!(sub.status, SubscriptionStatus::Active);
    // Nothing more happens: no cancellation 30 days later.
    clock.advance(DAY * 40);
    assert!(dunning.advance(clock.now_unix_ms()).is_empty());

    assert_eq!(
        audit,
        vec![
            "Renewed { period_start_unix_ms: 1751328000000, period_end_unix_ms: 1754006400000 }",
            "PaymentFailed",
            "RetryPayment { attempt: 1 }",
            "RetryPayment { attempt: 2 }",
            "RetryPayment { attempt: 3 }",
            "RetryPayment { attempt: 4 }",
            "Suspend",
            "Restore",
            "PaymentSucceeded",
        ]
    );
    // Six calls reached the provider: the first charge, four retries (the
    // transient one included) and the customer's payment.
    assert_eq!(payments.provider().calls(), 6);
}

#[test]
fn unpaid_subscription_is_canceled_thirty_days_after_suspension() {
    let clock = ManualClock::new(JUN_1);
    let mut sub = start(&clock, None);
    sub.payment_failed(clock.now_unix_ms()).expect("past due");
    let mut dunning = DunningState::begin(
        sub.id.clone(),
        &sub.tenant,
        "inv_0001",
        DunningPolicy::default(),
        clock.now_unix_ms(),
    )
    .expect("valid policy");
    clock.advance(DAY * 40);
    let events = dunning.advance(clock.now_unix_ms());
    let applied: Vec<_> = events
        .iter()
        .filter_map(|e| e.apply_to(&mut sub).expect("legal transition"))
        .map(|e| (e.from, e.to))
        .collect();
    assert_eq!(events.len(), 6);
    assert_eq!(
        applied,
        vec![
            (SubscriptionStatus::PastDue, SubscriptionStatus::Suspended),
            (SubscriptionStatus::Suspended, SubscriptionStatus::Canceled),
        ]
    );
    assert_eq!(sub.status, SubscriptionStatus::Canceled);
    assert_eq!(sub.cancel_reason, Some(CancelReason::NonPayment));
    assert_eq!(sub.canceled_at_unix_ms, Some(JUN_1 + 40 * DAY_MS));
}
