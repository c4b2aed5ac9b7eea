//! From ledger metrics to catalog metrics: what a tenant's metered usage over
//! a billing period amounts to in the units the catalog prices.
//!
//! The usage ledger counts raw, technical quantities (calls by kind,
//! microseconds, bytes, byte-seconds); the catalog prices four billable
//! metrics. The mapping, one rule per catalog metric:
//!
//! | catalog metric     | ledger metrics                                        | rule |
//! |--------------------|-------------------------------------------------------|------|
//! | `api_calls`        | `api_calls.read` + `.write` + `.query` + `.other`     | sum (exact) |
//! | `compute_hours`    | `compute_us`                                          | `compute_us / 3_600_000_000`, half-even to [`COMPUTE_HOURS_DECIMALS`] places |
//! | `bandwidth_gb`     | `bandwidth_in_bytes` + `bandwidth_out_bytes`          | `bytes / 10^9` (exact) |
//! | `storage_gb_month` | `storage_byte_seconds`                                | [`gb_months`]`(byte_seconds x 1000, period_length_ms, decimals)` |
//!
//! `api_calls.admin` is **not billed**: administrative calls (tenant and key
//! management made on the tenant's behalf by the operator) are the
//! operator's cost, not the tenant's usage. It is still metered, so it shows
//! in usage reports.
//!
//! Every [`BillableQuantity`] keeps the raw ledger totals it came from
//! ([`UsageSource`]s); invoice lines carry them, so an invoice's usage amount
//! can be recomputed from the ledger: `amount = price(quantity − included)`.
//!
//! Ledger rows are hourly: a row belongs to a period when its hour starts
//! inside `[hour_start(start), hour_start(end))` — both ends rounded down to
//! the hour. Consecutive periods therefore partition the hours with nothing
//! billed twice and nothing left out: an hour that straddles a boundary
//! (anchors are whole seconds, not whole hours) is billed to the period that
//! begins inside it, and the hour in which a subscription starts belongs to
//! its first period (rounding only `end` would leave the usage of that first
//! partial hour unbilled).

use rust_decimal::{Decimal, RoundingStrategy};

use super::ledger::{hour_start, LedgerError, UsageLedger};
use super::storage::{gb_months, StorageError};
use super::{
    API_CALLS_OTHER, API_CALLS_QUERY, API_CALLS_READ, API_CALLS_WRITE, BANDWIDTH_IN_BYTES,
    BANDWIDTH_OUT_BYTES, COMPUTE_US, STORAGE_BYTE_SECONDS,
};
use crate::catalog::MetricId;
use crate::invoice::{InvoicePeriod, UsageSource};

/// Microseconds in an hour.
pub const MICROSECONDS_PER_HOUR: u64 = 3_600_000_000;

/// Decimal places of billed compute hours (a nanosecond-hour resolution:
/// 10^-12 h = 3.6 ns, far below anything priced).
pub const COMPUTE_HOURS_DECIMALS: u32 = 12;

/// Decimal places of billed storage GB-months.
pub const STORAGE_GB_MONTH_DECIMALS: u32 = 9;

/// Bytes in a billed gigabyte (decimal, as the catalog's units).
const BYTES_PER_GB_SCALE: u32 = 9;

/// The ledger metrics summed into `api_calls` (admin calls are not billed).
pub const BILLED_API_CALL_METRICS: [&str; 4] = [
    API_CALLS_READ,
    API_CALLS_WRITE,
    API_CALLS_QUERY,
    API_CALLS_OTHER,
];

/// Why billable usage could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BillableUsageError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Converting storage to GB-months failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A quantity did not fit a `Decimal`.
    #[error("usage of {metric} overflows")]
    Overflow {
        /// The catalog metric.
        metric: MetricId,
    },
}

/// One catalog metric's usage over a period, with its ledger sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillableQuantity {
    /// The catalog metric.
    pub metric: MetricId,
    /// The quantity in the catalog metric's unit.
    pub quantity: Decimal,
    /// The raw ledger totals it came from.
    pub sources: Vec<UsageSource>,
}

fn sum(sources: &[UsageSource]) -> u128 {
    sources.iter().map(|s| u128::from(s.quantity)).sum()
}

fn decimal(value: u128, scale: u32, metric: MetricId) -> Result<Decimal, BillableUsageError> {
    i128::try_from(value)
        .ok()
        .and_then(|v| Decimal::try_from_i128_with_scale(v, scale).ok())
        .ok_or(BillableUsageError::Overflow { metric })
}

/// The tenant's billable usage over `period`, one entry per catalog metric
/// (in the order api calls, compute, bandwidth, storage), zero quantities
/// included. See the module docs for the rules.
pub fn billable_usage(
    ledger: &dyn UsageLedger,
    tenant: &str,
    period: InvoicePeriod,
) -> Result<Vec<BillableQuantity>, BillableUsageError> {
    // Every ledger metric billed, in one look-up.
    let mut all_metrics: Vec<&str> = BILLED_API_CALL_METRICS.to_vec();
    all_metrics.extend([
        COMPUTE_US,
        BANDWIDTH_IN_BYTES,
        BANDWIDTH_OUT_BYTES,
        STORAGE_BYTE_SECONDS,
    ]);
    let entries = ledger.query_metrics(
        tenant,
        &all_metrics,
        hour_start(period.start_unix_ms),
        hour_start(period.end_unix_ms),
    )?;
    let totals = |metrics: &[&str]| -> Vec<UsageSource> {
        metrics
            .iter()
            .map(|metric| {
                let index = all_metrics
                    .iter()
                    .position(|m| m == metric)
                    .expect("every metric asked for is in all_metrics");
                let rows = &entries[index];
                UsageSource {
                    ledger_metric: (*metric).to_owned(),
                    quantity: rows
                        .first()
                        .map_or(0, |first| first.aggregation.roll_up(rows)),
                }
            })
            .collect()
    };

    let calls = totals(&BILLED_API_CALL_METRICS);
    let api_calls = decimal(sum(&calls), 0, MetricId::api_calls())?;

    let compute = totals(&[COMPUTE_US]);
    let compute_hours = decimal(sum(&compute), 0, MetricId::compute_hours())?
        .checked_div(Decimal::from(MICROSECONDS_PER_HOUR))
        .ok_or(BillableUsageError::Overflow {
            metric: MetricId::compute_hours(),
        })?
        .round_dp_with_strategy(
            COMPUTE_HOURS_DECIMALS,
            RoundingStrategy::MidpointNearestEven,
        )
        .normalize();

    let bandwidth = totals(&[BANDWIDTH_IN_BYTES, BANDWIDTH_OUT_BYTES]);
    let bandwidth_gb = decimal(
        sum(&bandwidth),
        BYTES_PER_GB_SCALE,
        MetricId::bandwidth_gb(),
    )?
    .normalize();

    let storage = totals(&[STORAGE_BYTE_SECONDS]);
    let byte_ms = sum(&storage)
        .checked_mul(1_000)
        .ok_or(BillableUsageError::Overflow {
            metric: MetricId::storage_gb_month(),
        })?;
    let period_length_ms = period.end_unix_ms - period.start_unix_ms;
    let storage_gb_month =
        gb_months(byte_ms, period_length_ms, STORAGE_GB_MONTH_DECIMALS)?.normalize();

    Ok(vec![
        BillableQuantity {
            metric: MetricId::api_calls(),
            quantity: api_calls,
            sources: calls,
        },
        BillableQuantity {
            metric: MetricId::compute_hours(),
            quantity: compute_hours,
            sources: compute,
        },
        BillableQuantity {
            metric: MetricId::bandwidth_gb(),
            quantity: bandwidth_gb,
            sources: bandwidth,
        },
        BillableQuantity {
            metric: MetricId::storage_gb_month(),
            quantity: storage_gb_month,
            sources: storage,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::{Aggregation, InMemoryLedger, LedgerEntry, API_CALLS_ADMIN, HOUR_MS};
    use rust_decimal_macros::dec;

    // 2026-11-01T00:00:00Z
    const NOV_1: i64 = 1_793_491_200_000;

    fn entry(metric: &str, hour: i64, quantity: u64) -> LedgerEntry {
        LedgerEntry {
            tenant: "7".into(),
            metric: metric.into(),
            hour_start_unix_ms: NOV_1 + hour * HOUR_MS,
            quantity,
            aggregation: Aggregation::Sum,
            latest_at_unix_ms: None,
        }
    }

    #[test]
    fn ledger_metrics_map_to_catalog_units_and_admin_calls_are_free() {
        let ledger = InMemoryLedger::new();
        ledger
            .upsert_batch(&[
                entry(API_CALLS_READ, 0, 100),
                entry(API_CALLS_WRITE, 1, 20),
                entry(API_CALLS_QUERY, 2, 3),
                entry(API_CALLS_OTHER, 2, 1),
                entry(API_CALLS_ADMIN, 2, 1_000),
                entry(COMPUTE_US, 3, 5_400_000_000),
                entry(BANDWIDTH_IN_BYTES, 3, 1_500_000_000),
                entry(BANDWIDTH_OUT_BYTES, 4, 250_000_000),
                // 2 GB for the whole 30-day period, in byte-seconds.
                entry(STORAGE_BYTE_SECONDS, 5, 2_000_000_000 * 30 * 86_400),
                // Outside the period: not billed.
                entry(API_CALLS_READ, 30 * 24, 7),
            ])
            .expect("upserts");
        let period = InvoicePeriod::new(NOV_1, NOV_1 + 30 * 24 * HOUR_MS).expect("period");
        let usage = billable_usage(&ledger, "7", period).expect("computes");
        let quantities: Vec<Decimal> = usage.iter().map(|u| u.quantity).collect();
        assert_eq!(quantities, vec![dec!(124), dec!(1.5), dec!(1.75), dec!(2)]);
        assert_eq!(
            usage[0]
                .sources
                .iter()
                .map(|s| s.quantity)
                .collect::<Vec<_>>(),
            vec![100, 20, 3, 1]
        );
        assert_eq!(usage[3].sources[0].ledger_metric, STORAGE_BYTE_SECONDS);
    }

    #[test]
    fn periods_anchored_inside_an_hour_partition_the_hours() {
        let ledger = InMemoryLedger::new();
        // One read in each of hours 0..=4.
        let rows: Vec<LedgerEntry> = (0..5).map(|h| entry(API_CALLS_READ, h, 1)).collect();
        ledger.upsert_batch(&rows).expect("upserts");
        // A subscription starting at 00:42:10 and renewing at 02:17:00: the
        // read of hour 0 (before 00:42:10, same hour) is in the first period;
        // hour 2 straddles the renewal and goes to the second.
        let start = NOV_1 + 42 * 60_000 + 10_000;
        let renewal = NOV_1 + 2 * HOUR_MS + 17 * 60_000;
        let end = NOV_1 + 5 * HOUR_MS;
        let calls = |from: i64, to: i64| {
            let period = InvoicePeriod::new(from, to).expect("period");
            billable_usage(&ledger, "7", period).expect("computes")[0].quantity
        };
        assert_eq!(calls(start, renewal), dec!(2));
        assert_eq!(calls(renewal, end), dec!(3));
        assert_eq!(calls(start, renewal) + calls(renewal, end), dec!(5));
    }

    #[test]
    fn compute_hours_round_half_even_at_twelve_places() {
        let ledger = InMemoryLedger::new();
        ledger
            .upsert_batch(&[entry(COMPUTE_US, 0, 1)])
            .expect("upserts");
        let period = InvoicePeriod::new(NOV_1, NOV_1 + HOUR_MS).expect("period");
        let usage = billable_usage(&ledger, "7", period).expect("computes");
        // 1 / 3.6e9 = 2.777...e-10 h
        assert_eq!(usage[1].quantity, dec!(0.000000000278));
    }
}
