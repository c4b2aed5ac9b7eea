//! Storage usage integrated over time: byte-milliseconds and GB-months.
//!
//! Storage is billed by how much was stored for how long, not by a single
//! sample. [`StorageIntegrator::sample`] is called whenever a tenant's stored
//! size changes (and may be called at any other time); between two samples
//! the size is taken as constant (piecewise-constant), so the integral is
//! exact: `sum(bytes_i * (t_{i+1} - t_i))` in `u128` byte-milliseconds.
//!
//! GB-months: one GB is [`BYTES_PER_GB`] (10^9 bytes, as storage is sold) and
//! one month is the length of the billing period being invoiced, so
//! `gb_months = byte_ms / (10^9 * period_length_ms)`: the time-weighted
//! average size over the period, in GB. Keeping 5 GB for a whole period is
//! exactly 5 GB-months whether the month has 28 or 31 days, which is what a
//! plan's "5 GB included" means. (A fixed 730-hour month would bill a
//! constant 5 GB as 5.1 GB-months in a 31-day month.)

use std::collections::HashMap;

use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Bytes in a GB (decimal).
pub const BYTES_PER_GB: u128 = 1_000_000_000;

/// Most decimals [`gb_months`] rounds to.
pub const GB_MONTH_DECIMALS_MAX: u32 = 12;

/// Why a sample or conversion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The instant is before the tenant's latest sample.
    #[error(
        "instant {at_unix_ms} for tenant {tenant} is before its latest sample at {latest_unix_ms}"
    )]
    OutOfOrder {
        /// The tenant.
        tenant: String,
        /// The instant given.
        at_unix_ms: i64,
        /// The latest sample's instant.
        latest_unix_ms: i64,
    },
    /// No sample was ever recorded for the tenant.
    #[error("no storage samples for tenant {tenant}")]
    UnknownTenant {
        /// The tenant.
        tenant: String,
    },
    /// The period length is not positive.
    #[error("period length {period_length_ms} ms is not positive")]
    InvalidPeriod {
        /// The length given.
        period_length_ms: i64,
    },
    /// More decimals than [`GB_MONTH_DECIMALS_MAX`].
    #[error("{decimals} decimals exceed {max}", max = GB_MONTH_DECIMALS_MAX)]
    TooManyDecimals {
        /// The decimals asked for.
        decimals: u32,
    },
    /// The result does not fit.
    #[error("storage integral overflows")]
    Overflow,
}

/// One tenant's integration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageTrack {
    /// Size since the latest sample.
    pub bytes: u64,
    /// Instant of the latest sample.
    pub since_unix_ms: i64,
    /// Byte-milliseconds accumulated from `accumulating_from_unix_ms` to
    /// `since_unix_ms`.
    pub byte_ms: u128,
    /// Start of the span being accumulated (the last period close, or the
    /// first sample).
    pub accumulating_from_unix_ms: i64,
}

impl StorageTrack {
    fn byte_ms_until(&self, until_unix_ms: i64) -> Result<u128, StorageError> {
        let elapsed_ms = u128::try_from(until_unix_ms - self.since_unix_ms)
            .map_err(|_| StorageError::Overflow)?;
        u128::from(self.bytes)
            .checked_mul(elapsed_ms)
            .and_then(|area| area.checked_add(self.byte_ms))
            .ok_or(StorageError::Overflow)
    }
}

/// Integrates each tenant's stored bytes over time.
#[derive(Debug, Default)]
pub struct StorageIntegrator {
    tenants: Mutex<HashMap<String, StorageTrack>>,
}

impl StorageIntegrator {
    /// An integrator with no tenants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores saved state (see [`Self::snapshot`]).
    pub fn from_snapshot(tenants: HashMap<String, StorageTrack>) -> Self {
        StorageIntegrator {
            tenants: Mutex::new(tenants),
        }
    }

    /// A copy of every tenant's state, for persistence.
    pub fn snapshot(&self) -> HashMap<String, StorageTrack> {
        self.tenants.lock().clone()
    }

    fn out_of_order(tenant: &str, at_unix_ms: i64, track: &StorageTrack) -> StorageError {
        StorageError::OutOfOrder {
            tenant: tenant.to_owned(),
            at_unix_ms,
            latest_unix_ms: track.since_unix_ms,
        }
    }

    /// Records that `tenant` stores `bytes` from `at_unix_ms` on. The first
    /// sample starts the integration; usage before it counts as zero.
    pub fn sample(&self, tenant: &str, bytes: u64, at_unix_ms: i64) -> Result<(), StorageError> {
        let mut tenants = self.tenants.lock();
        match tenants.get_mut(tenant) {
            None => {
                tenants.insert(
                    tenant.to_owned(),
                    StorageTrack {
                        bytes,
                        since_unix_ms: at_unix_ms,
                        byte_ms: 0,
                        accumulating_from_unix_ms: at_unix_ms,
                    },
                );
            }
            Some(track) => {
                if at_unix_ms < track.since_unix_ms {
                    return Err(Self::out_of_order(tenant, at_unix_ms, track));
                }
                track.byte_ms = track.byte_ms_until(at_unix_ms)?;
                track.bytes = bytes;
                track.since_unix_ms = at_unix_ms;
            }
        }
        Ok(())
    }

    /// Byte-milliseconds accumulated since the last close, up to
    /// `until_unix_ms`, without closing.
    pub fn byte_ms_to_date(&self, tenant: &str, until_unix_ms: i64) -> Result<u128, StorageError> {
        let tenants = self.tenants.lock();
        let track = tenants
            .get(tenant)
            .ok_or_else(|| StorageError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        if until_unix_ms < track.since_unix_ms {
            return Err(Self::out_of_order(tenant, until_unix_ms, track));
        }
        track.byte_ms_until(until_unix_ms)
    }

    /// Closes a billing period at `period_end_unix_ms`: returns the
    /// byte-milliseconds accumulated since the previous close and starts a
    /// new accumulation there (the current size carries over).
    pub fn close_period(
        &self,
        tenant: &str,
        period_end_unix_ms: i64,
    ) -> Result<u128, StorageError> {
        let mut tenants = self.tenants.lock();
        let track = tenants
            .get_mut(tenant)
            .ok_or_else(|| StorageError::UnknownTenant {
                tenant: tenant.to_owned(),
            })?;
        if period_end_unix_ms < track.since_unix_ms {
            return Err(Self::out_of_order(tenant, period_end_unix_ms, track));
        }
        let total = track.byte_ms_until(period_end_unix_ms)?;
        track.byte_ms = 0;
        track.since_unix_ms = period_end_unix_ms;
        track.accumulating_from_unix_ms = period_end_unix_ms;
        Ok(total)
    }
}

/// Converts byte-milliseconds over a billing period of `period_length_ms`
/// into GB-months, rounded half to even to `decimals` places, exactly (in
/// integers, then one rounding).
pub fn gb_months(
    byte_ms: u128,
    period_length_ms: i64,
    decimals: u32,
) -> Result<Decimal, StorageError> {
    if period_length_ms <= 0 {
        return Err(StorageError::InvalidPeriod { period_length_ms });
    }
    if decimals > GB_MONTH_DECIMALS_MAX {
        return Err(StorageError::TooManyDecimals { decimals });
    }
    let denominator = BYTES_PER_GB
        .checked_mul(u128::try_from(period_length_ms).map_err(|_| StorageError::Overflow)?)
        .ok_or(StorageError::Overflow)?;
    let numerator = byte_ms
        .checked_mul(10u128.pow(decimals))
        .ok_or(StorageError::Overflow)?;
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let rest = denominator - remainder;
    let rounded = match remainder.cmp(&rest) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient % 2),
    };
    let mantissa = i128::try_from(rounded).map_err(|_| StorageError::Overflow)?;
    Decimal::try_from_i128_with_scale(mantissa, decimals).map_err(|_| StorageError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const DAY_MS: i64 = 86_400_000;
    const GB: u64 = 1_000_000_000;

    #[test]
    fn samples_out_of_order_and_unknown_tenants_are_refused() {
        let s = StorageIntegrator::new();
        s.sample("acme", 10, 1_000).expect("samples");
        assert_eq!(
            s.sample("acme", 10, 999),
            Err(StorageError::OutOfOrder {
                tenant: "acme".into(),
                at_unix_ms: 999,
                latest_unix_ms: 1_000
            })
        );
        assert_eq!(
            s.close_period("other", 5),
            Err(StorageError::UnknownTenant {
                tenant: "other".into()
            })
        );
        assert_eq!(s.byte_ms_to_date("acme", 1_500), Ok(5_000));
    }

    #[test]
    fn constant_storage_for_a_whole_period_is_that_many_gb_months() {
        for days in [28, 30, 31] {
            let s = StorageIntegrator::new();
            s.sample("acme", 5 * GB, 0).expect("samples");
            let period_ms = days * DAY_MS;
            let byte_ms = s.close_period("acme", period_ms).expect("closes");
            assert_eq!(gb_months(byte_ms, period_ms, 6), Ok(dec!(5.000000)));
        }
    }

    #[test]
    fn gb_months_round_half_even_and_check_inputs() {
        // 0.5 of a GB-month at 0 decimals -> 0; 1.5 -> 2; 2.5 -> 2.
        let period_ms = 1_000;
        let half = u128::from(GB) * 500;
        assert_eq!(gb_months(half, period_ms, 0), Ok(dec!(0)));
        assert_eq!(gb_months(3 * half, period_ms, 0), Ok(dec!(2)));
        assert_eq!(gb_months(5 * half, period_ms, 0), Ok(dec!(2)));
        assert_eq!(
            gb_months(1, 0, 2),
            Err(StorageError::InvalidPeriod {
                period_length_ms: 0
            })
        );
        assert_eq!(
            gb_months(1, 1, GB_MONTH_DECIMALS_MAX + 1),
            Err(StorageError::TooManyDecimals {
                decimals: GB_MONTH_DECIMALS_MAX + 1
            })
        );
        assert_eq!(gb_months(u128::MAX, 1, 1), Err(StorageError::Overflow));
    }

    #[test]
    fn snapshot_round_trips() {
        let s = StorageIntegrator::new();
        s.sample("acme", 7, 0).expect("samples");
        s.sample("acme", 9, 10).expect("samples");
        let restored = StorageIntegrator::from_snapshot(s.snapshot());
        assert_eq!(restored.byte_ms_to_date("acme", 20), Ok(70 + 90));
    }
}
