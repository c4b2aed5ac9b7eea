//! The plan catalog: plans, included usage, limits and overage prices, as data.
//!
//! A [`Catalog`] names its currency, the metrics it bills ([`MetricDefinition`])
//! and its plans ([`Plan`]). It is plain serde data, loaded from TOML or JSON
//! ([`Catalog::from_toml_str`], [`Catalog::from_json_str`],
//! [`Catalog::from_path`]) and always validated on load, so a catalog in hand
//! has unique plan and metric ids, known metrics only, valid prices and no
//! negative amounts. Decimal amounts in files are strings (`"0.25"`) or
//! integers (`29`); floats are refused.
//!
//! [`Catalog::default_catalog`] is the product's default price list:
//!
//! | plan         | per month | storage incl. | API calls incl. | collections | calls / hour |
//! |--------------|-----------|---------------|-----------------|-------------|--------------|
//! | starter      | $29       | 5 GB-month    | 100,000         | 10          | 10,000       |
//! | professional | $99       | 100 GB-month  | 5,000,000       | 100         | 100,000      |
//! | enterprise   | $499      | 1,000 GB-month (1 TB) | unlimited | 1,000     | 1,000,000    |
//!
//! Overage on every plan, all [`PriceModel::PerUnit`]: $0.00001 per API call
//! (= $0.01 per 1,000, chosen over a 1,000-call package so that 150,500 calls
//! cost $1.505 -> $1.50 instead of being rounded up to a whole package; the two
//! agree on multiples of 1,000), $0.25 per GB-month of storage, $0.10 per
//! compute hour, $0.09 per GB of bandwidth. Trial: 14 days.
//!
//! Decisions written down: a GB is 10^9 bytes ([`BYTES_PER_GB`]) and a TB is
//! 1,000 GB. Included storage is an allowance billed beyond, not a hard cap:
//! the default plans leave `storage_bytes_max` unset so that growth is billed
//! as overage instead of refused. Limits the brief does not give
//! (documents, concurrent requests, query duration) are unset (no limit).
//! There is no yearly price in the default catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::Currency;
use crate::price::{PriceError, PriceModel};

/// Bytes in one GB, for storage and bandwidth metrics: 10^9 (SI), not 2^30.
pub const BYTES_PER_GB: u64 = 1_000_000_000;

/// Longest metric or plan id, in bytes.
pub const ID_LENGTH_MAX: usize = 64;

/// Most plans a catalog may hold; a price list is short, and the bound keeps
/// validation loops and files small.
pub const PLANS_MAX: usize = 1_000;

/// Most metrics a catalog may define.
pub const METRICS_MAX: usize = 1_000;

/// Errors of loading and validating a catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The TOML text is malformed or does not match the catalog shape.
    #[error("catalog TOML: {source}")]
    Toml {
        /// The parser's error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// The JSON text is malformed or does not match the catalog shape.
    #[error("catalog JSON: {source}")]
    Json {
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The catalog could not be written as TOML.
    #[error("catalog cannot be written as TOML: {source}")]
    TomlWrite {
        /// The serializer's error.
        #[source]
        source: toml::ser::Error,
    },
    /// The catalog file could not be read.
    #[error("cannot read catalog file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file extension is neither `.toml` nor `.json`.
    #[error("catalog file {path} must end in .toml or .json")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// The catalog has no plans.
    #[error("the catalog has no plans")]
    NoPlans,
    /// The catalog has more than [`PLANS_MAX`] plans or [`METRICS_MAX`] metrics.
    #[error("the catalog has {count} {what}, more than the maximum {max}")]
    TooMany {
        /// `"plans"` or `"metrics"`.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// Two plans have the same id.
    #[error("duplicate plan id {plan}")]
    DuplicatePlanId {
        /// The repeated id.
        plan: PlanId,
    },
    /// Two metric definitions have the same id.
    #[error("duplicate metric id {metric}")]
    DuplicateMetricId {
        /// The repeated id.
        metric: MetricId,
    },
    /// A plan names a metric the catalog does not define.
    #[error("plan {plan}: unknown metric {metric} in {section}")]
    UnknownMetric {
        /// The plan.
        plan: PlanId,
        /// The undefined metric.
        metric: MetricId,
        /// `"included"` or `"overage"`.
        section: &'static str,
    },
    /// A plan's overage price is invalid.
    #[error("plan {plan}: invalid overage price for {metric}: {source}")]
    InvalidOveragePrice {
        /// The plan.
        plan: PlanId,
        /// The metric priced.
        metric: MetricId,
        /// What is wrong with the price.
        #[source]
        source: PriceError,
    },
    /// A plan's base price is negative.
    #[error("plan {plan}: {interval} base price is negative: {value}")]
    NegativeBasePrice {
        /// The plan.
        plan: PlanId,
        /// Which price (monthly or yearly).
        interval: BillingInterval,
        /// The rejected value.
        value: Decimal,
    },
    /// A plan includes a negative quantity of a metric.
    #[error("plan {plan}: included quantity of {metric} is negative: {value}")]
    NegativeIncluded {
        /// The plan.
        plan: PlanId,
        /// The metric.
        metric: MetricId,
        /// The rejected value.
        value: Decimal,
    },
}

/// Errors of parsing an id ([`MetricId`], [`PlanId`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty or longer than [`ID_LENGTH_MAX`].
    #[error("id {id:?} must be 1 to {ID_LENGTH_MAX} bytes long")]
    Length {
        /// The rejected id.
        id: String,
    },
    /// The id has a character other than `a-z`, `0-9`, `_`, `-`, or does not
    /// start with a letter.
    #[error("id {id:?} must start with a-z and use only a-z, 0-9, '_' and '-'")]
    Characters {
        /// The rejected id.
        id: String,
    },
}

fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() || id.len() > ID_LENGTH_MAX {
        return Err(IdError::Length { id: id.to_owned() });
    }
    let starts_with_letter = id.as_bytes()[0].is_ascii_lowercase();
    let allowed = |byte: &u8| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_' || *byte == b'-'
    };
    if !starts_with_letter || !id.as_bytes().iter().all(allowed) {
        return Err(IdError::Characters { id: id.to_owned() });
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
                let id = id.into();
                validate_id(&id)?;
                Ok($name(id))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(id: String) -> Result<Self, IdError> {
                $name::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(id: &str) -> Result<Self, IdError> {
                $name::new(id)
            }
        }
    };
}

text_id!(
    /// The name of a billed metric: `api_calls`, `storage_gb_month`,
    /// `compute_hours`, `bandwidth_gb`, or a custom name (`a-z0-9_-`, starting
    /// with a letter, at most [`ID_LENGTH_MAX`] bytes).
    MetricId
);

text_id!(
    /// A plan's id, e.g. `starter` (same alphabet as [`MetricId`]).
    PlanId
);

impl MetricId {
    /// Name of the API-calls metric (count of calls).
    pub const API_CALLS: &'static str = "api_calls";
    /// Name of the storage metric (GB-months, integrated over time).
    pub const STORAGE_GB_MONTH: &'static str = "storage_gb_month";
    /// Name of the compute metric (compute hours of query CPU time).
    pub const COMPUTE_HOURS: &'static str = "compute_hours";
    /// Name of the bandwidth metric (GB in and out).
    pub const BANDWIDTH_GB: &'static str = "bandwidth_gb";

    /// `api_calls`.
    pub fn api_calls() -> MetricId {
        MetricId(Self::API_CALLS.to_owned())
    }
    /// `storage_gb_month`.
    pub fn storage_gb_month() -> MetricId {
        MetricId(Self::STORAGE_GB_MONTH.to_owned())
    }
    /// `compute_hours`.
    pub fn compute_hours() -> MetricId {
        MetricId(Self::COMPUTE_HOURS.to_owned())
    }
    /// `bandwidth_gb`.
    pub fn bandwidth_gb() -> MetricId {
        MetricId(Self::BANDWIDTH_GB.to_owned())
    }
}

/// How often a plan's base price is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingInterval {
    /// Every month.
    Monthly,
    /// Every year.
    Yearly,
}

impl fmt::Display for BillingInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BillingInterval::Monthly => "monthly",
            BillingInterval::Yearly => "yearly",
        })
    }
}

/// A metric the catalog bills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDefinition {
    /// The metric's id.
    pub id: MetricId,
    /// Human name for invoices, e.g. `"API calls"`.
    pub display_name: String,
    /// Unit of one quantity, e.g. `"call"`, `"GB-month"`.
    pub unit: String,
}

/// How much of a metric a plan includes before overage is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludedQuantity {
    /// This much is included; usage beyond it is overage.
    Limited(Decimal),
    /// Everything is included; there is never overage.
    Unlimited,
}

impl IncludedQuantity {
    /// Nothing included.
    pub const NONE: IncludedQuantity = IncludedQuantity::Limited(Decimal::ZERO);

    /// The overage for `used`: `max(0, used - included)`, zero when unlimited.
    pub fn overage(&self, used: Decimal) -> Decimal {
        match self {
            IncludedQuantity::Unlimited => Decimal::ZERO,
            // Overflow needs quantities near 10^28, far beyond any usage;
            // it is treated as "no overage" rather than a panic.
            IncludedQuantity::Limited(included) => used
                .checked_sub(*included)
                .map_or(Decimal::ZERO, |overage| overage.max(Decimal::ZERO)),
        }
    }
}

impl fmt::Display for IncludedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncludedQuantity::Unlimited => f.write_str("unlimited"),
            IncludedQuantity::Limited(quantity) => write!(f, "{}", quantity.normalize()),
        }
    }
}

const UNLIMITED: &str = "unlimited";

impl Serialize for IncludedQuantity {
    /// `"unlimited"` or the quantity as a decimal string.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IncludedQuantity::Unlimited => serializer.serialize_str(UNLIMITED),
            IncludedQuantity::Limited(quantity) => serializer.collect_str(quantity),
        }
    }
}

impl<'de> Deserialize<'de> for IncludedQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IncludedVisitor;
        impl serde::de::Visitor<'_> for IncludedVisitor {
            type Value = IncludedQuantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"unlimited\", an integer, or a decimal string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IncludedQuantity, E> {
                if text == UNLIMITED {
                    return Ok(IncludedQuantity::Unlimited);
                }
                Decimal::from_str_exact(text.trim())
                    .map(IncludedQuantity::Limited)
                    .map_err(|error| E::custom(format_args!("invalid quantity {text:?}: {error}")))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<IncludedQuantity, E> {
                Ok(IncludedQuantity::Limited(Decimal::from(value)))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<IncludedQuantity, E> {
                Ok(IncludedQuantity::Limited(Decimal::from(value)))
            }
        }
        deserializer.deserialize_any(IncludedVisitor)
    }
}

/// A plan's recurring base price, in major units of the catalog currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasePrice {
    /// Price per month.
    #[serde(with = "crate::price::decimal_text")]
    pub monthly: Decimal,
    /// Price per year, when the plan can be bought yearly.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::price::decimal_text::option"
    )]
    pub yearly: Option<Decimal>,
}

/// Hard limits of a plan, fed to tenancy's quotas. `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    /// Most live storage, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_bytes_max: Option<u64>,
    /// Most documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents_max: Option<u64>,
    /// Most collections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections_max: Option<u64>,
    /// Most API calls per hour (the rate limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_calls_per_hour: Option<u64>,
    /// Most requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_requests_max: Option<u64>,
    /// Longest a query may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_duration_ms_max: Option<u64>,
}

/// One plan of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The plan's id.
    pub id: PlanId,
    /// Human name, e.g. `"Starter"`.
    pub name: String,
    /// Recurring base price.
    pub base_price: BasePrice,
    /// Trial length in days (0 = no trial).
    #[serde(default)]
    pub trial_days: u32,
    /// Hard limits.
    #[serde(default)]
    pub limits: PlanLimits,
    /// Included quantity per metric per billing period; a metric not listed
    /// includes nothing.
    #[serde(default)]
    pub included: BTreeMap<MetricId, IncludedQuantity>,
    /// Price of usage beyond the included quantity, per metric.
    #[serde(default)]
    pub overage: BTreeMap<MetricId, PriceModel>,
}

impl Plan {
    /// The base price for an interval, if the plan is sold that way.
    pub fn base_price_for(&self, interval: BillingInterval) -> Option<Decimal> {
        match interval {
            BillingInterval::Monthly => Some(self.base_price.monthly),
            BillingInterval::Yearly => self.base_price.yearly,
        }
    }

    /// The included quantity of a metric (nothing when not listed).
    pub fn included_for(&self, metric: &MetricId) -> IncludedQuantity {
        self.included
            .get(metric)
            .copied()
            .unwrap_or(IncludedQuantity::NONE)
    }

    /// The overage price of a metric, if the plan prices it.
    pub fn overage_price(&self, metric: &MetricId) -> Option<&PriceModel> {
        self.overage.get(metric)
    }

    fn validate(&self, metrics: &BTreeSet<&MetricId>) -> Result<(), CatalogError> {
        let negative = |value: Decimal| value.is_sign_negative() && !value.is_zero();
        if negative(self.base_price.monthly) {
            return Err(CatalogError::NegativeBasePrice {
                plan: self.id.clone(),
                interval: BillingInterval::Monthly,
                value: self.base_price.monthly,
            });
        }
        if let Some(yearly) = self.base_price.yearly.filter(|yearly| negative(*yearly)) {
            return Err(CatalogError::NegativeBasePrice {
                plan: self.id.clone(),
                interval: BillingInterval::Yearly,
                value: yearly,
            });
        }
        for (metric, included) in &self.included {
            self.known_metric(metrics, metric, "included")?;
            if let IncludedQuantity::Limited(value) = included {
                if negative(*value) {
                    return Err(CatalogError::NegativeIncluded {
                        plan: self.id.clone(),
                        metric: metric.clone(),
                        value: *value,
                    });
                }
            }
        }
        for (metric, price) in &self.overage {
            self.known_metric(metrics, metric, "overage")?;
            price
                .validate()
                .map_err(|source| CatalogError::InvalidOveragePrice {
                    plan: self.id.clone(),
                    metric: metric.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    fn known_metric(
        &self,
        metrics: &BTreeSet<&MetricId>,
        metric: &MetricId,
        section: &'static str,
    ) -> Result<(), CatalogError> {
        if metrics.contains(metric) {
            Ok(())
        } else {
            Err(CatalogError::UnknownMetric {
                plan: self.id.clone(),
                metric: metric.clone(),
                section,
            })
        }
    }
}

/// The price list: currency, metrics and plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Currency of every price in the catalog.
    pub currency: Currency,
    /// The metrics plans may include and price.
    #[serde(default)]
    pub metrics: Vec<MetricDefinition>,
    /// The plans, in display order.
    pub plans: Vec<Plan>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::default_catalog()
    }
}

impl Catalog {
    /// The product's default catalog (see the module docs for the table).
    pub fn default_catalog() -> Catalog {
        let metric = |id: &str, display_name: &str, unit: &str| MetricDefinition {
            id: MetricId(id.to_owned()),
            display_name: display_name.to_owned(),
            unit: unit.to_owned(),
        };
        let overage = BTreeMap::from([
            (
                MetricId::api_calls(),
                PriceModel::PerUnit {
                    unit_price: Decimal::new(1, 5),
                },
            ),
            (
                MetricId::storage_gb_month(),
                PriceModel::PerUnit {
                    unit_price: Decimal::new(25, 2),
                },
            ),
            (
                MetricId::compute_hours(),
                PriceModel::PerUnit {
                    unit_price: Decimal::new(10, 2),
                },
            ),
            (
                MetricId::bandwidth_gb(),
                PriceModel::PerUnit {
                    unit_price: Decimal::new(9, 2),
                },
            ),
        ]);
        let plan = |id: &str,
                    name: &str,
                    monthly: i64,
                    storage_gb: i64,
                    api_calls: IncludedQuantity,
                    collections_max: u64,
                    api_calls_per_hour: u64| Plan {
            id: PlanId(id.to_owned()),
            name: name.to_owned(),
            base_price: BasePrice {
                monthly: Decimal::from(monthly),
                yearly: None,
            },
            trial_days: DEFAULT_TRIAL_DAYS,
            limits: PlanLimits {
                collections_max: Some(collections_max),
                api_calls_per_hour: Some(api_calls_per_hour),
                ..PlanLimits::default()
            },
            included: BTreeMap::from([
                (MetricId::api_calls(), api_calls),
                (
                    MetricId::storage_gb_month(),
                    IncludedQuantity::Limited(Decimal::from(storage_gb)),
                ),
            ]),
            overage: overage.clone(),
        };
        let calls = |count: i64| IncludedQuantity::Limited(Decimal::from(count));
        Catalog {
            currency: Currency::USD,
            metrics: vec![
                metric(MetricId::API_CALLS, "API calls", "call"),
                metric(MetricId::STORAGE_GB_MONTH, "Storage", "GB-month"),
                metric(MetricId::COMPUTE_HOURS, "Compute", "hour"),
                metric(MetricId::BANDWIDTH_GB, "Bandwidth", "GB"),
            ],
            plans: vec![
                plan("starter", "Starter", 29, 5, calls(100_000), 10, 10_000),
                plan(
                    "professional",
                    "Professional",
                    99,
                    100,
                    calls(5_000_000),
                    100,
                    100_000,
                ),
                plan(
                    "enterprise",
                    "Enterprise",
                    499,
                    1_000,
                    IncludedQuantity::Unlimited,
                    1_000,
                    1_000_000,
                ),
            ],
        }
    }

    /// Parses and validates a TOML catalog.
    pub fn from_toml_str(text: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|source| CatalogError::Toml { source })?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Parses and validates a JSON catalog.
    pub fn from_json_str(text: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog =
            serde_json::from_str(text).map_err(|source| CatalogError::Json { source })?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Reads a `.toml` or `.json` catalog file (chosen by extension).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let path = path.as_ref();
        let extension = path.extension().and_then(|extension| extension.to_str());
        let parse: fn(&str) -> Result<Catalog, CatalogError> = match extension {
            Some("toml") => Catalog::from_toml_str,
            Some("json") => Catalog::from_json_str,
            _ => {
                return Err(CatalogError::UnsupportedFormat {
                    path: path.to_owned(),
                })
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        parse(&text)
    }

    /// The catalog as TOML text.
    pub fn to_toml_string(&self) -> Result<String, CatalogError> {
        toml::to_string_pretty(self).map_err(|source| CatalogError::TomlWrite { source })
    }

    /// The catalog as pretty JSON text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("a catalog has only string map keys")
    }

    /// Checks the catalog: at least one plan, unique plan and metric ids,
    /// plans naming only defined metrics, valid non-negative prices.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.plans.is_empty() {
            return Err(CatalogError::NoPlans);
        }
        for (what, count, max) in [
            ("plans", self.plans.len(), PLANS_MAX),
            ("metrics", self.metrics.len(), METRICS_MAX),
        ] {
            if count > max {
                return Err(CatalogError::TooMany { what, count, max });
            }
        }
        let mut metrics = BTreeSet::new();
        for definition in &self.metrics {
            if !metrics.insert(&definition.id) {
                return Err(CatalogError::DuplicateMetricId {
                    metric: definition.id.clone(),
                });
            }
        }
        let mut plan_ids = BTreeSet::new();
        for plan in &self.plans {
            if !plan_ids.insert(&plan.id) {
                return Err(CatalogError::DuplicatePlanId {
                    plan: plan.id.clone(),
                });
            }
            plan.validate(&metrics)?;
        }
        Ok(())
    }

    /// The plan with this id.
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id.as_str() == id)
    }

    /// The definition of a metric.
    pub fn metric(&self, id: &MetricId) -> Option<&MetricDefinition> {
        self.metrics.iter().find(|metric| &metric.id == id)
    }

    /// Each plan's limits as tenancy quotas, keyed by plan id: what
    /// `aerolith_tenancy::TenancyOptions::plans` takes, so the catalog is the
    /// one source of every plan's limits.
    pub fn quota_limits(&self) -> BTreeMap<String, aerolith_tenancy::QuotaLimits> {
        self.plans
            .iter()
            .map(|plan| {
                (
                    plan.id.as_str().to_owned(),
                    aerolith_tenancy::QuotaLimits::from(&plan.limits),
                )
            })
            .collect()
    }
}

impl From<&PlanLimits> for aerolith_tenancy::QuotaLimits {
    fn from(limits: &PlanLimits) -> Self {
        aerolith_tenancy::QuotaLimits {
            storage_bytes_max: limits.storage_bytes_max,
            documents_max: limits.documents_max,
            collections_max: limits.collections_max,
            api_calls_per_hour: limits.api_calls_per_hour,
            // A limit past u32 is no limit in practice; saturate rather than wrap.
            concurrent_requests_max: limits
                .concurrent_requests_max
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            query_duration_ms_max: limits.query_duration_ms_max,
        }
    }
}

/// Trial length of the default plans, in days.
pub const DEFAULT_TRIAL_DAYS: u32 = 14;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalog_is_valid() {
        Catalog::default_catalog()
            .validate()
            .expect("the default catalog validates");
    }

    #[test]
    fn ids_refuse_uppercase_spaces_and_empty() {
        assert!(matches!(
            MetricId::new("API calls"),
            Err(IdError::Characters { .. })
        ));
        assert!(matches!(MetricId::new(""), Err(IdError::Length { .. })));
        assert!(matches!(
            PlanId::new("9lives"),
            Err(IdError::Characters { .. })
        ));
        assert!(PlanId::new("pro-2026_v2").is_ok());
    }
}
