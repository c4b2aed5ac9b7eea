//! Price models with worked examples, validation errors and properties.

use aerolith_billing::price::PRICE_TIERS_MAX;
use aerolith_billing::{PriceError, PriceModel, PriceTier};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

/// 0-1,000 at $0.001, 1,001-10,000 at $0.0005 (+$1 tier fee), beyond at $0.0001.
fn tiers() -> Vec<PriceTier> {
    vec![
        PriceTier::up_to(1_000, dec!(0.001)),
        PriceTier::up_to(10_000, dec!(0.0005)).with_flat_fee(dec!(1)),
        PriceTier::unbounded(dec!(0.0001)),
    ]
}

#[test]
fn flat_price_ignores_quantity() {
    let model = PriceModel::Flat { amount: dec!(29) };
    assert_eq!(model.price_units(0), Ok(dec!(29)));
    assert_eq!(model.price_units(1_000_000), Ok(dec!(29)));
}

#[test]
fn per_unit_price_is_exact_for_sub_cent_prices() {
    let model = PriceModel::PerUnit {
        unit_price: dec!(0.00001),
    };
    assert_eq!(model.price_units(150_000), Ok(dec!(1.50)));
    assert_eq!(model.price_units(150_500), Ok(dec!(1.505)));
    assert_eq!(model.price(dec!(2.5)), Ok(dec!(0.000025)));
    assert_eq!(model.price_units(0), Ok(dec!(0)));
}

#[test]
fn package_price_rounds_up_to_whole_packages() {
    let model = PriceModel::Package {
        package_size: 1_000,
        package_price: dec!(0.01),
    };
    assert_eq!(model.price_units(150_000), Ok(dec!(1.50)));
    assert_eq!(model.price_units(150_001), Ok(dec!(1.51)));
    assert_eq!(model.price_units(1), Ok(dec!(0.01)));
    assert_eq!(model.price_units(0), Ok(dec!(0)));
    let parts = model.breakdown(dec!(150_001)).expect("valid model");
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].quantity, parts[0].unit_price),
        (dec!(151), dec!(0.01))
    );
}

#[test]
fn graduated_price_charges_each_tier_its_own_units() {
    let model = PriceModel::Graduated { tiers: tiers() };
    // 1,000 × 0.001 = 1.00
    assert_eq!(model.price_units(1_000), Ok(dec!(1.000)));
    // 1.00 + (500 × 0.0005 + 1 fee) = 2.25
    assert_eq!(model.price_units(1_500), Ok(dec!(2.25)));
    // 1.00 + (9,000 × 0.0005 + 1) + 5,000 × 0.0001 = 1 + 5.5 + 0.5 = 7.00
    assert_eq!(model.price_units(15_000), Ok(dec!(7)));
    let parts = model.breakdown(dec!(15_000)).expect("valid");
    let quantities: Vec<Decimal> = parts.iter().map(|part| part.quantity).collect();
    assert_eq!(quantities, vec![dec!(1_000), dec!(9_000), dec!(5_000)]);
    assert_eq!(model.price_units(0), Ok(dec!(0)));
}

#[test]
fn volume_price_charges_all_units_at_the_reached_tier() {
    let model = PriceModel::Volume { tiers: tiers() };
    assert_eq!(model.price_units(1_000), Ok(dec!(1)));
    // 1,500 × 0.0005 + 1 fee
    assert_eq!(model.price_units(1_500), Ok(dec!(1.75)));
    // 15,000 × 0.0001
    assert_eq!(model.price_units(15_000), Ok(dec!(1.5)));
    // the bound is inclusive: 10,000 is still in tier 2
    assert_eq!(model.price_units(10_000), Ok(dec!(6)));
    assert_eq!(model.price_units(0), Ok(dec!(0)));
}

#[test]
fn graduated_and_volume_differ_on_the_same_usage() {
    let usage = dec!(15_000);
    let graduated = PriceModel::Graduated { tiers: tiers() }.price(usage);
    let volume = PriceModel::Volume { tiers: tiers() }.price(usage);
    assert_eq!((graduated, volume), (Ok(dec!(7)), Ok(dec!(1.5))));
}

#[test]
fn fractional_quantities_are_priced_exactly() {
    let model = PriceModel::Graduated { tiers: tiers() };
    assert_eq!(model.price(dec!(1000.5)), Ok(dec!(1.00025) + dec!(1)));
}

#[test]
fn negative_quantity_is_refused() {
    let model = PriceModel::PerUnit {
        unit_price: dec!(1),
    };
    assert_eq!(
        model.price(dec!(-1)),
        Err(PriceError::NegativeQuantity { quantity: dec!(-1) })
    );
}

#[test]
fn invalid_models_are_refused_with_typed_errors() {
    let cases = [
        (
            PriceModel::Flat { amount: dec!(-1) },
            PriceError::NegativePrice {
                field: "amount",
                value: dec!(-1),
            },
        ),
        (
            PriceModel::Package {
                package_size: 0,
                package_price: dec!(1),
            },
            PriceError::ZeroPackageSize,
        ),
        (
            PriceModel::Package {
                package_size: 10,
                package_price: dec!(-1),
            },
            PriceError::NegativePrice {
                field: "package_price",
                value: dec!(-1),
            },
        ),
        (PriceModel::Graduated { tiers: vec![] }, PriceError::NoTiers),
        (
            PriceModel::Volume {
                tiers: vec![PriceTier::unbounded(dec!(1)), PriceTier::unbounded(dec!(1))],
            },
            PriceError::UnboundedTierNotLast { index: 0 },
        ),
        (
            PriceModel::Graduated {
                tiers: vec![PriceTier::up_to(0, dec!(1)), PriceTier::unbounded(dec!(1))],
            },
            PriceError::TiersNotAscending {
                index: 0,
                up_to: 0,
                previous_up_to: 0,
            },
        ),
        (
            PriceModel::Graduated {
                tiers: vec![
                    PriceTier::up_to(10, dec!(1)),
                    PriceTier::up_to(10, dec!(1)),
                    PriceTier::unbounded(dec!(1)),
                ],
            },
            PriceError::TiersNotAscending {
                index: 1,
                up_to: 10,
                previous_up_to: 10,
            },
        ),
        (
            PriceModel::Volume {
                tiers: vec![PriceTier::up_to(10, dec!(1))],
            },
            PriceError::LastTierBounded { up_to: 10 },
        ),
        (
            PriceModel::Volume {
                tiers: vec![PriceTier::unbounded(dec!(1)).with_flat_fee(dec!(-2))],
            },
            PriceError::NegativePrice {
                field: "flat_fee",
                value: dec!(-2),
            },
        ),
    ];
    for (model, expected) in cases {
        assert_eq!(model.validate(), Err(expected.clone()), "{model:?}");
        assert_eq!(
            model.price_units(5),
            Err(expected),
            "an invalid model never prices"
        );
    }
}

#[test]
fn tier_count_is_bounded_at_the_limit() {
    let tiers_at = |count: usize| -> Vec<PriceTier> {
        let mut tiers: Vec<PriceTier> = (1..count)
            .map(|bound| PriceTier::up_to(bound as u64, dec!(1)))
            .collect();
        tiers.push(PriceTier::unbounded(dec!(1)));
        tiers
    };
    assert_eq!(
        PriceModel::Graduated {
            tiers: tiers_at(PRICE_TIERS_MAX)
        }
        .validate(),
        Ok(())
    );
    assert_eq!(
        PriceModel::Graduated {
            tiers: tiers_at(PRICE_TIERS_MAX + 1)
        }
        .validate(),
        Err(PriceError::TooManyTiers {
            count: PRICE_TIERS_MAX + 1
        })
    );
}

#[test]
fn price_models_serialize_with_a_model_tag() {
    let model = PriceModel::Package {
        package_size: 1_000,
        package_price: dec!(0.01),
    };
    let json = serde_json::to_string(&model).expect("serializes");
    assert_eq!(
        json,
        r#"{"model":"package","package_size":1000,"package_price":"0.01"}"#
    );
    assert_eq!(
        serde_json::from_str::<PriceModel>(&json).expect("reads back"),
        model
    );
}

fn arbitrary_tiers() -> impl Strategy<Value = Vec<PriceTier>> {
    let price = (0_i64..100_000).prop_map(|mantissa| Decimal::new(mantissa, 5));
    let fee = proptest::option::of((0_i64..1_000).prop_map(|mantissa| Decimal::new(mantissa, 2)));
    proptest::collection::vec((1_u64..10_000, price, fee), 1..6).prop_map(|raw| {
        let mut bound = 0_u64;
        let last = raw.len() - 1;
        raw.into_iter()
            .enumerate()
            .map(|(index, (step, unit_price, flat_fee))| {
                bound += step;
                PriceTier {
                    up_to: (index != last).then_some(bound),
                    unit_price,
                    flat_fee,
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn graduated_total_never_decreases_with_quantity(tiers in arbitrary_tiers(), a in 0_u64..100_000, b in 0_u64..100_000) {
        let model = PriceModel::Graduated { tiers };
        let (low, high) = (a.min(b), a.max(b));
        prop_assert!(model.price_units(low)? <= model.price_units(high)?);
    }

    #[test]
    fn graduated_and_volume_agree_for_a_single_tier(
        unit_mantissa in 0_i64..1_000_000,
        fee in proptest::option::of(0_i64..10_000),
        quantity in 0_u64..10_000_000,
    ) {
        let tier = PriceTier {
            up_to: None,
            unit_price: Decimal::new(unit_mantissa, 6),
            flat_fee: fee.map(|mantissa| Decimal::new(mantissa, 2)),
        };
        let graduated = PriceModel::Graduated { tiers: vec![tier.clone()] }.price_units(quantity)?;
        let volume = PriceModel::Volume { tiers: vec![tier] }.price_units(quantity)?;
        prop_assert_eq!(graduated, volume);
    }

    #[test]
    fn package_is_whole_packages_times_price(size in 1_u64..100_000, price_cents in 0_i64..100_000, quantity in 0_u64..10_000_000) {
        let package_price = Decimal::new(price_cents, 2);
        let model = PriceModel::Package { package_size: size, package_price };
        let packages = quantity.div_ceil(size);
        prop_assert_eq!(model.price_units(quantity)?, Decimal::from(packages) * package_price);
    }

    #[test]
    fn breakdown_sums_to_the_price(tiers in arbitrary_tiers(), quantity in 0_u64..100_000) {
        for model in [PriceModel::Graduated { tiers: tiers.clone() }, PriceModel::Volume { tiers }] {
            let parts = model.breakdown(Decimal::from(quantity))?;
            let sum: Decimal = parts.iter().map(|part| part.amount).sum();
            prop_assert_eq!(sum, model.price_units(quantity)?);
            for part in parts {
                prop_assert_eq!(part.amount, part.quantity * part.unit_price + part.flat_fee);
            }
        }
    }
}
