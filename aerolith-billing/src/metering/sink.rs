//! Tenancy's metering hook: `impl UsageSink for Meter`.
//!
//! Each [`UsageEvent`] becomes up to four metric updates for the tenant:
//! one call of its kind (`api_calls.read|write|query|admin`, or
//! `api_calls.other` for kinds added later), `bandwidth_in_bytes`,
//! `bandwidth_out_bytes`, and for queries `compute_us` (the query's duration
//! in microseconds). The event's idempotency id guards the call count; when
//! the call is a duplicate, the other updates are skipped too, so a retried
//! report changes nothing.
//!
//! Counters are keyed by the tenant id's decimal form ([`TenantKey`]),
//! formatted on the stack: the hook allocates nothing once the tenant's
//! cells exist. Refused updates are counted in [`Meter::dropped_events`],
//! because the hook cannot return errors.

use std::sync::atomic::Ordering;

use aerolith_tenancy::{OperationKind, TenantId, UsageEvent, UsageSink};

use crate::metering::{
    Meter, RecordOutcome, API_CALLS_ADMIN, API_CALLS_OTHER, API_CALLS_QUERY, API_CALLS_READ,
    API_CALLS_WRITE, BANDWIDTH_IN_BYTES, BANDWIDTH_OUT_BYTES, COMPUTE_US,
};

/// Digits in the largest `u64`.
const U64_DIGITS_MAX: usize = 20;

/// The meter's name for a tenant: its id in decimal, formatted without
/// allocating. Use `TenantKey::new(id).as_str()` (or `id.to_string()`) to
/// query a tenant's usage.
#[derive(Debug, Clone, Copy)]
pub struct TenantKey {
    digits: [u8; U64_DIGITS_MAX],
    start: usize,
}

impl TenantKey {
    /// Formats `tenant`.
    pub fn new(tenant: TenantId) -> Self {
        let mut digits = [b'0'; U64_DIGITS_MAX];
        let mut start = U64_DIGITS_MAX;
        let mut rest = tenant.get();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        TenantKey { digits, start }
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[self.start..]).expect("ASCII digits are UTF-8")
    }
}

fn call_metric(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Read => API_CALLS_READ,
        OperationKind::Write => API_CALLS_WRITE,
        OperationKind::Query => API_CALLS_QUERY,
        OperationKind::Admin => API_CALLS_ADMIN,
        _ => API_CALLS_OTHER,
    }
}

impl UsageSink for Meter {
    fn record(&self, event: UsageEvent) {
        let key = TenantKey::new(event.tenant);
        let tenant = key.as_str();
        let at = event.at_unix_ms;
        let dropped = || {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        };
        match Meter::record(
            self,
            tenant,
            call_metric(event.kind),
            1,
            at,
            event.idempotency_id,
        ) {
            Ok(RecordOutcome::Counted) => {}
            Ok(RecordOutcome::Duplicate) => return,
            Err(_) => return dropped(),
        }
        let compute_us = if event.kind == OperationKind::Query {
            event.duration_us
        } else {
            0
        };
        for (metric, quantity) in [
            (BANDWIDTH_IN_BYTES, event.bytes_in),
            (BANDWIDTH_OUT_BYTES, event.bytes_out),
            (COMPUTE_US, compute_us),
        ] {
            if quantity > 0 && Meter::record(self, tenant, metric, quantity, at, None).is_err() {
                dropped();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::{period_to_date, InMemoryLedger, MeterConfig, HOUR_MS};
    use aerolith_core::ManualClock;
    use std::sync::Arc;

    const T0: i64 = 1_714_557_600_000;

    fn event(kind: OperationKind, id: Option<u128>) -> UsageEvent {
        UsageEvent {
            tenant: TenantId::new(42),
            kind,
            bytes_in: 100,
            bytes_out: 2_000,
            duration_us: 1_500,
            at_unix_ms: T0,
            idempotency_id: id,
        }
    }

    #[test]
    fn tenant_key_is_the_decimal_id() {
        for raw in [0, 7, 42, 1_000_000, u64::MAX] {
            assert_eq!(TenantKey::new(TenantId::new(raw)).as_str(), raw.to_string());
        }
    }

    #[test]
    fn usage_events_become_calls_bandwidth_and_query_time() {
        let ledger = Arc::new(InMemoryLedger::new());
        let meter = Meter::start(
            MeterConfig::default(),
            ledger.clone(),
            Arc::new(ManualClock::new(T0)),
        )
        .expect("starts");
        let sink: &dyn UsageSink = &meter;
        sink.record(event(OperationKind::Read, Some(1)));
        sink.record(event(OperationKind::Query, Some(2)));
        sink.record(event(OperationKind::Query, Some(2))); // a retried report
        sink.record(event(OperationKind::Write, None));
        meter.shutdown().expect("shuts down");
        sink.record(event(OperationKind::Admin, None)); // after shutdown
        assert_eq!(meter.dropped_events(), 1);
        let usage = period_to_date(
            ledger.as_ref(),
            "42",
            &[
                API_CALLS_READ,
                API_CALLS_QUERY,
                API_CALLS_WRITE,
                API_CALLS_ADMIN,
                BANDWIDTH_IN_BYTES,
                BANDWIDTH_OUT_BYTES,
                COMPUTE_US,
            ],
            T0 - HOUR_MS,
            T0,
        )
        .expect("reads");
        let quantities: Vec<u64> = usage.iter().map(|(_, q)| *q).collect();
        assert_eq!(quantities, vec![1, 1, 1, 0, 300, 6_000, 1_500]);
    }
}
