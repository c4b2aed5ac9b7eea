//! The catalog: the default price list, loading from TOML / JSON, and every
//! load error naming what is wrong.

use std::path::PathBuf;

use aerolith_billing::catalog::{BYTES_PER_GB, DEFAULT_TRIAL_DAYS};
use aerolith_billing::{
    BillingInterval, Catalog, CatalogError, Currency, IncludedQuantity, MetricId, PriceError,
    PriceModel,
};
use rust_decimal_macros::dec;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name)
}

/// A one-metric, one-plan catalog with `plan_extra` appended to the plan.
fn small_catalog(plan_extra: &str) -> String {
    format!(
        r#"
currency = "USD"

[[metrics]]
id = "api_calls"
display_name = "API calls"
unit = "call"

[[plans]]
id = "starter"
name = "Starter"
base_price = {{ monthly = 29 }}
{plan_extra}
"#
    )
}

#[test]
fn fixture_file_parses_equal_to_the_default_catalog() {
    let loaded = Catalog::from_path(fixture("default_catalog.toml")).expect("fixture is valid");
    assert_eq!(loaded, Catalog::default_catalog());
}

#[test]
fn default_catalog_has_the_issue_prices_allowances_and_limits() {
    let catalog = Catalog::default_catalog();
    assert_eq!(catalog.currency, Currency::USD);
    let expected = [
        (
            "starter",
            dec!(29),
            dec!(5),
            Some(dec!(100_000)),
            10,
            10_000,
        ),
        (
            "professional",
            dec!(99),
            dec!(100),
            Some(dec!(5_000_000)),
            100,
            100_000,
        ),
        ("enterprise", dec!(499), dec!(1000), None, 1_000, 1_000_000),
    ];
    for (id, monthly, storage_gb, calls, collections, calls_per_hour) in expected {
        let plan = catalog.plan(id).expect("plan exists");
        assert_eq!(
            plan.base_price_for(BillingInterval::Monthly),
            Some(monthly),
            "{id}"
        );
        assert_eq!(plan.base_price_for(BillingInterval::Yearly), None, "{id}");
        assert_eq!(
            plan.included_for(&MetricId::storage_gb_month()),
            IncludedQuantity::Limited(storage_gb),
            "{id}"
        );
        let calls = calls.map_or(IncludedQuantity::Unlimited, IncludedQuantity::Limited);
        assert_eq!(plan.included_for(&MetricId::api_calls()), calls, "{id}");
        assert_eq!(
            plan.included_for(&MetricId::compute_hours()),
            IncludedQuantity::NONE,
            "{id}"
        );
        assert_eq!(plan.limits.collections_max, Some(collections), "{id}");
        assert_eq!(plan.limits.api_calls_per_hour, Some(calls_per_hour), "{id}");
        assert_eq!(
            plan.limits.storage_bytes_max, None,
            "{id}: storage is billed beyond, not capped"
        );
        assert_eq!(plan.trial_days, DEFAULT_TRIAL_DAYS);
        assert_eq!(plan.trial_days, 14);
        let per_unit = |metric: MetricId| match plan.overage_price(&metric) {
            Some(PriceModel::PerUnit { unit_price }) => *unit_price,
            other => panic!("{id}: {metric} should be per unit, is {other:?}"),
        };
        assert_eq!(per_unit(MetricId::api_calls()), dec!(0.00001));
        assert_eq!(per_unit(MetricId::storage_gb_month()), dec!(0.25));
        assert_eq!(per_unit(MetricId::compute_hours()), dec!(0.10));
        assert_eq!(per_unit(MetricId::bandwidth_gb()), dec!(0.09));
    }
    assert_eq!(BYTES_PER_GB, 1_000_000_000);
}

#[test]
fn thousand_api_calls_cost_one_cent_in_the_default_catalog() {
    let catalog = Catalog::default_catalog();
    let price = catalog
        .plan("starter")
        .and_then(|plan| plan.overage_price(&MetricId::api_calls()))
        .expect("starter prices api calls");
    assert_eq!(price.price_units(1_000), Ok(dec!(0.01)));
}

#[test]
fn default_catalog_round_trips_through_toml_and_json() {
    let catalog = Catalog::default_catalog();
    let toml = catalog.to_toml_string().expect("catalog writes as TOML");
    assert_eq!(
        Catalog::from_toml_str(&toml).expect("written TOML reads back"),
        catalog
    );
    let json = catalog.to_json_string();
    assert_eq!(
        Catalog::from_json_str(&json).expect("written JSON reads back"),
        catalog
    );
}

#[test]
fn json_file_loads_by_extension() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.json");
    std::fs::write(&path, Catalog::default_catalog().to_json_string()).expect("write catalog");
    assert_eq!(
        Catalog::from_path(&path).expect("json loads"),
        Catalog::default_catalog()
    );
}

#[test]
fn unknown_extension_is_refused() {
    let error = Catalog::from_path("catalog.yaml").expect_err("yaml is not supported");
    assert!(
        matches!(error, CatalogError::UnsupportedFormat { path } if path.as_path() == std::path::Path::new("catalog.yaml"))
    );
}

#[test]
fn missing_file_names_the_path() {
    let error = Catalog::from_path(fixture("no_such_catalog.toml")).expect_err("file is missing");
    assert!(
        matches!(error, CatalogError::Read { path, .. } if path.ends_with("no_such_catalog.toml"))
    );
}

#[test]
fn duplicate_plan_id_is_named() {
    let mut text = small_catalog("");
    text.push_str(
        "\n[[plans]]\nid = \"starter\"\nname = \"Again\"\nbase_price = { monthly = 1 }\n",
    );
    let error = Catalog::from_toml_str(&text).expect_err("duplicate plan");
    assert!(matches!(error, CatalogError::DuplicatePlanId { plan } if plan.as_str() == "starter"));
}

#[test]
fn duplicate_metric_id_is_named() {
    let text = small_catalog("").replace(
        "[[plans]]",
        "[[metrics]]\nid = \"api_calls\"\ndisplay_name = \"Calls\"\nunit = \"call\"\n\n[[plans]]",
    );
    let error = Catalog::from_toml_str(&text).expect_err("duplicate metric");
    assert!(
        matches!(error, CatalogError::DuplicateMetricId { metric } if metric.as_str() == "api_calls")
    );
}

#[test]
fn unknown_metric_in_included_is_named() {
    let text = small_catalog("included = { api_calls = 10, storage_gb_month = 5 }");
    let error = Catalog::from_toml_str(&text).expect_err("storage is not defined");
    assert!(matches!(
        error,
        CatalogError::UnknownMetric { plan, metric, section: "included" }
            if plan.as_str() == "starter" && metric.as_str() == "storage_gb_month"
    ));
}

#[test]
fn unknown_metric_in_overage_is_named() {
    let text =
        small_catalog("overage = { gpu_hours = { model = \"per_unit\", unit_price = \"1\" } }");
    let error = Catalog::from_toml_str(&text).expect_err("gpu_hours is not defined");
    assert!(matches!(
        error,
        CatalogError::UnknownMetric { metric, section: "overage", .. } if metric.as_str() == "gpu_hours"
    ));
}

#[test]
fn tiers_out_of_order_are_refused_with_the_tier_index() {
    let text = small_catalog(
        r#"
[plans.overage.api_calls]
model = "graduated"
tiers = [
  { up_to = 1000, unit_price = "0.001" },
  { up_to = 500, unit_price = "0.0005" },
  { unit_price = "0.0001" },
]"#,
    );
    let error = Catalog::from_toml_str(&text).expect_err("tiers descend");
    assert!(matches!(
        error,
        CatalogError::InvalidOveragePrice {
            source: PriceError::TiersNotAscending {
                index: 1,
                up_to: 500,
                previous_up_to: 1000
            },
            ..
        }
    ));
}

#[test]
fn bounded_last_tier_is_refused() {
    let text = small_catalog(
        r#"
[plans.overage.api_calls]
model = "volume"
tiers = [{ up_to = 1000, unit_price = "0.001" }]"#,
    );
    let error = Catalog::from_toml_str(&text).expect_err("last tier bounded");
    assert!(matches!(
        error,
        CatalogError::InvalidOveragePrice {
            source: PriceError::LastTierBounded { up_to: 1000 },
            ..
        }
    ));
}

#[test]
fn negative_unit_price_is_refused() {
    let text =
        small_catalog("overage = { api_calls = { model = \"per_unit\", unit_price = \"-0.01\" } }");
    let error = Catalog::from_toml_str(&text).expect_err("negative price");
    assert!(matches!(
        error,
        CatalogError::InvalidOveragePrice {
            source: PriceError::NegativePrice {
                field: "unit_price",
                ..
            },
            ..
        }
    ));
}

#[test]
fn negative_base_price_is_refused() {
    let text = small_catalog("").replace("monthly = 29", "monthly = \"-29\"");
    let error = Catalog::from_toml_str(&text).expect_err("negative base price");
    assert!(matches!(
        error,
        CatalogError::NegativeBasePrice { interval: BillingInterval::Monthly, value, .. } if value == dec!(-29)
    ));
}

#[test]
fn negative_yearly_price_is_refused() {
    let text = small_catalog("").replace("monthly = 29", "monthly = 29, yearly = \"-1\"");
    let error = Catalog::from_toml_str(&text).expect_err("negative yearly price");
    assert!(matches!(
        error,
        CatalogError::NegativeBasePrice {
            interval: BillingInterval::Yearly,
            ..
        }
    ));
}

#[test]
fn negative_included_quantity_is_refused() {
    let text = small_catalog("included = { api_calls = -5 }");
    let error = Catalog::from_toml_str(&text).expect_err("negative included");
    assert!(matches!(error, CatalogError::NegativeIncluded { value, .. } if value == dec!(-5)));
}

#[test]
fn float_prices_are_refused_because_they_are_inexact() {
    let text =
        small_catalog("overage = { api_calls = { model = \"per_unit\", unit_price = 0.1 } }");
    let error = Catalog::from_toml_str(&text).expect_err("float price");
    assert!(matches!(&error, CatalogError::Toml { .. }));
    assert!(
        error.to_string().contains("decimal written as a string"),
        "{error}"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let text = small_catalog("trial_dayz = 14");
    assert!(matches!(
        Catalog::from_toml_str(&text),
        Err(CatalogError::Toml { .. })
    ));
}

#[test]
fn invalid_metric_name_is_refused() {
    let text = small_catalog("").replace("id = \"api_calls\"", "id = \"API Calls\"");
    let error = Catalog::from_toml_str(&text).expect_err("bad metric id");
    assert!(error.to_string().contains("API Calls"), "{error}");
}

#[test]
fn unknown_currency_is_refused() {
    let text = small_catalog("").replace("\"USD\"", "\"XYZ\"");
    let error = Catalog::from_toml_str(&text).expect_err("unknown currency");
    assert!(error.to_string().contains("XYZ"), "{error}");
}

#[test]
fn catalog_without_plans_is_refused() {
    let text = "currency = \"USD\"\nplans = []\n";
    assert!(matches!(
        Catalog::from_toml_str(text),
        Err(CatalogError::NoPlans)
    ));
}

#[test]
fn malformed_json_is_a_json_error() {
    assert!(matches!(
        Catalog::from_json_str("{\"currency\": "),
        Err(CatalogError::Json { .. })
    ));
}

#[test]
fn custom_metrics_and_zero_package_size_are_checked() {
    let text = small_catalog(
        "overage = { gpu_seconds = { model = \"package\", package_size = 0, package_price = 1 } }",
    )
    .replace(
        "[[plans]]",
        "[[metrics]]\nid = \"gpu_seconds\"\ndisplay_name = \"GPU\"\nunit = \"second\"\n\n[[plans]]",
    );
    let error = Catalog::from_toml_str(&text).expect_err("package size 0");
    assert!(matches!(
        error,
        CatalogError::InvalidOveragePrice { metric, source: PriceError::ZeroPackageSize, .. } if metric.as_str() == "gpu_seconds"
    ));
}

#[test]
fn the_default_catalog_feeds_the_same_limits_as_tenancys_default_plans() {
    let from_catalog = aerolith_billing::Catalog::default_catalog().quota_limits();
    let tenancy = aerolith_tenancy::default_plans();
    assert_eq!(
        from_catalog.keys().collect::<Vec<_>>(),
        tenancy.keys().collect::<Vec<_>>()
    );
    for (plan, limits) in &from_catalog {
        let t = &tenancy[plan];
        assert_eq!(limits.collections_max, t.collections_max, "{plan}");
        assert_eq!(limits.api_calls_per_hour, t.api_calls_per_hour, "{plan}");
        assert_eq!(limits.storage_bytes_max, t.storage_bytes_max, "{plan}");
        assert_eq!(limits.documents_max, t.documents_max, "{plan}");
    }
    assert_eq!(from_catalog["starter"].collections_max, Some(10));
    assert_eq!(
        from_catalog["enterprise"].api_calls_per_hour,
        Some(1_000_000)
    );
}
