//! Money: checked arithmetic, display, and the half-even rounding rule.

use aerolith_billing::money::{round_half_even, ROUNDING_STRATEGY};
use aerolith_billing::{Currency, Money, MoneyError, MoneyOperation};
use proptest::prelude::*;
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;

fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD)
}

#[test]
fn rounding_rule_is_half_even() {
    assert_eq!(ROUNDING_STRATEGY, RoundingStrategy::MidpointNearestEven);
}

#[test]
fn half_cent_rounds_to_the_even_cent() {
    let cases = [
        (dec!(0.125), 12),
        (dec!(0.135), 14),
        (dec!(0.145), 14),
        (dec!(0.155), 16),
        (dec!(0.005), 0),
        (dec!(0.015), 2),
        (dec!(2.5), 250),
        (dec!(-0.125), -12),
        (dec!(-0.135), -14),
        (dec!(-0.005), 0),
    ];
    for (amount, cents) in cases {
        assert_eq!(
            Money::from_decimal(amount, Currency::USD),
            Ok(usd(cents)),
            "{amount}"
        );
    }
}

#[test]
fn values_off_the_midpoint_round_to_nearest() {
    assert_eq!(
        Money::from_decimal(dec!(0.1250001), Currency::USD),
        Ok(usd(13))
    );
    assert_eq!(
        Money::from_decimal(dec!(0.1349999), Currency::USD),
        Ok(usd(13))
    );
    assert_eq!(
        Money::from_decimal(dec!(-0.1250001), Currency::USD),
        Ok(usd(-13))
    );
    assert_eq!(
        Money::from_decimal(dec!(0.00001), Currency::USD),
        Ok(usd(0))
    );
}

#[test]
fn rounding_follows_the_currency_exponent() {
    assert_eq!(
        Money::from_decimal(dec!(2.5), Currency::JPY),
        Ok(Money::new(2, Currency::JPY))
    );
    assert_eq!(
        Money::from_decimal(dec!(3.5), Currency::JPY),
        Ok(Money::new(4, Currency::JPY))
    );
    let bhd = Currency::from_code("BHD").expect("BHD is known");
    assert_eq!(bhd.exponent(), 3);
    assert_eq!(
        Money::from_decimal(dec!(1.0005), bhd),
        Ok(Money::new(1000, bhd))
    );
    assert_eq!(round_half_even(dec!(1.0015), bhd), dec!(1.002));
}

#[test]
fn amounts_beyond_i64_are_out_of_range() {
    let huge = Decimal::from(i64::MAX);
    assert!(matches!(
        Money::from_decimal(huge, Currency::USD),
        Err(MoneyError::OutOfRange { .. })
    ));
}

#[test]
fn display_shows_symbol_and_sign() {
    assert_eq!(usd(1234).to_string(), "$12.34");
    assert_eq!(usd(-5).to_string(), "-$0.05");
    assert_eq!(usd(10_000_000).to_string(), "$100,000.00");
}

#[test]
fn mixing_currencies_is_an_error() {
    let euros = Money::new(100, Currency::EUR);
    assert_eq!(
        usd(100).checked_add(euros),
        Err(MoneyError::CurrencyMismatch {
            left: Currency::USD,
            right: Currency::EUR
        })
    );
    assert!(matches!(
        usd(100).checked_sub(euros),
        Err(MoneyError::CurrencyMismatch { .. })
    ));
    assert!(matches!(
        Money::checked_sum(Currency::USD, [usd(1), euros]),
        Err(MoneyError::CurrencyMismatch { .. })
    ));
}

#[test]
fn overflow_is_an_error_not_a_panic() {
    assert_eq!(
        usd(i64::MAX).checked_add(usd(1)),
        Err(MoneyError::Overflow {
            operation: MoneyOperation::Add
        })
    );
    assert_eq!(
        usd(i64::MIN).checked_sub(usd(1)),
        Err(MoneyError::Overflow {
            operation: MoneyOperation::Sub
        })
    );
    assert_eq!(
        usd(i64::MIN).checked_neg(),
        Err(MoneyError::Overflow {
            operation: MoneyOperation::Neg
        })
    );
    assert_eq!(
        usd(i64::MAX).checked_mul(2),
        Err(MoneyError::Overflow {
            operation: MoneyOperation::Mul
        })
    );
    assert_eq!(
        Money::checked_sum(Currency::USD, [usd(i64::MAX), usd(1)]),
        Err(MoneyError::Overflow {
            operation: MoneyOperation::Sum
        })
    );
}

#[test]
fn currency_codes_are_validated() {
    assert_eq!(Currency::from_code("USD"), Ok(Currency::USD));
    assert_eq!(Currency::USD.exponent(), 2);
    assert_eq!(Currency::default(), Currency::USD);
    assert!(matches!(
        Currency::from_code("usd"),
        Err(MoneyError::InvalidCurrencyCode { .. })
    ));
    assert!(matches!(
        Currency::from_code("US"),
        Err(MoneyError::InvalidCurrencyCode { .. })
    ));
    assert!(matches!(
        Currency::from_code("XYZ"),
        Err(MoneyError::UnknownCurrency { .. })
    ));
    let custom = Currency::with_exponent("XTS", 6).expect("custom currency");
    assert_eq!(custom.exponent(), 6);
    assert_eq!(
        Currency::with_exponent("XTS", 19),
        Err(MoneyError::ExponentTooLarge { exponent: 19 })
    );
}

#[test]
fn money_serializes_as_minor_units_and_code() {
    let json = serde_json::to_string(&usd(-1234)).expect("money serializes");
    assert_eq!(json, r#"{"amount_minor":-1234,"currency":"USD"}"#);
    assert_eq!(
        serde_json::from_str::<Money>(&json).expect("reads back"),
        usd(-1234)
    );
}

proptest! {
    #[test]
    fn decimal_round_trip_is_exact(cents in any::<i64>()) {
        let money = usd(cents);
        prop_assert_eq!(Money::from_decimal(money.to_decimal(), Currency::USD), Ok(money));
    }

    #[test]
    fn rounding_moves_at_most_half_a_cent(mantissa in -1_000_000_000_i64..1_000_000_000, scale in 0_u32..8) {
        let amount = Decimal::new(mantissa, scale);
        let money = Money::from_decimal(amount, Currency::USD).expect("in range");
        prop_assert!((money.to_decimal() - amount).abs() <= dec!(0.005));
    }

    #[test]
    fn checked_add_matches_i128_addition(a in any::<i64>(), b in any::<i64>()) {
        let exact = i128::from(a) + i128::from(b);
        match usd(a).checked_add(usd(b)) {
            Ok(sum) => prop_assert_eq!(i128::from(sum.amount_minor), exact),
            Err(error) => {
                prop_assert!(i64::try_from(exact).is_err());
                prop_assert_eq!(error, MoneyError::Overflow { operation: MoneyOperation::Add });
            }
        }
    }
}
