//! Metering wiring: the billing database, the usage meter and the plan
//! catalog the server runs with ([`Billing`]), the usage sink tenancy reports
//! to, the HTTP layer that meters request and response bytes, and the
//! per-tenant usage counters exported on `/metrics`.
//!
//! What is metered, per tenant:
//! - calls and query time come from tenancy's [`UsageEvent`]s (one per data
//!   operation, `compute_us` = the query's duration);
//! - bandwidth is the HTTP body bytes of every request authenticated as the
//!   tenant (errors included), counted here by [`meter_bandwidth`]. Tenancy's
//!   own `bytes_in`/`bytes_out` (document sizes) are zeroed before they reach
//!   the meter, so bandwidth is never counted twice.
//!
//! - storage (`storage_byte_seconds`) comes from the
//!   [`StorageSampler`]: [`run_storage_sampling`] samples every live
//!   tenant's committed stored bytes every `storage_sample_interval_ms`,
//!   [`Billing::sample_tenant_storage`] samples one tenant before its usage
//!   is read, and the shutdown hook takes a final sample before the meter's
//!   last flush. The sampler writes straight into the ledger together with
//!   its per-tenant state (collection `billing.storage_samples` of the
//!   billing database), so a restart resumes from the last committed sample
//!   and counts no interval twice; the downtime is counted at the size of
//!   the last sample (nothing could change it meanwhile). Storage calls are
//!   not API calls: sampling reads tenancy's in-memory quota gauge, neither
//!   metered nor rate limited.
//!
//! `/metrics` cardinality is bounded: per-tenant series exist for at most
//! [`USAGE_METRICS_TENANTS_MAX`] tenants (the first seen since start); the
//! rest are summed under `tenant="other"`. Each tenant has 8 series.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use aerolith_billing::metering::{
    EngineLedger, LedgerError, Meter, MeterConfig, MeterError, SampleReport, SamplerError,
    StorageSampler, TenantKey, API_CALLS_ADMIN, API_CALLS_OTHER, API_CALLS_QUERY, API_CALLS_READ,
    API_CALLS_WRITE, BANDWIDTH_IN_BYTES, BANDWIDTH_OUT_BYTES,
};
use aerolith_billing::{Catalog, CatalogError};
use aerolith_core::{Clock, Database, MasterKey, Options};
use aerolith_tenancy::{OperationKind, Tenancy, TenantId, UsageEvent, UsageSink};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use parking_lot::{Mutex, RwLock};

use crate::metrics::{MetricsSource, MetricsWriter};
use crate::state::AppState;

/// The directory under the data directory that holds the billing database.
pub const BILLING_DIR: &str = "billing";
/// Key-derivation context of the billing database key (from the master key).
pub const BILLING_KEY_CONTEXT: &str = "aerolith 2026-11-23 billing database key";
/// Most tenants with their own `/metrics` series; later tenants share
/// `tenant="other"`.
pub const USAGE_METRICS_TENANTS_MAX: usize = 1_000;
/// Label value of the shared series beyond [`USAGE_METRICS_TENANTS_MAX`].
pub const OTHER_TENANTS_LABEL: &str = "other";

/// Why the billing side could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BillingOpenError {
    /// The billing database could not be opened.
    #[error("cannot open the billing database: {0}")]
    Engine(#[from] aerolith_core::Error),
    /// The usage ledger could not be set up in it.
    #[error("cannot open the usage ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The meter refused its configuration.
    #[error("cannot start the usage meter: {0}")]
    Meter(#[from] MeterError),
    /// The catalog file could not be loaded.
    #[error("cannot load the plan catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// The storage sampler's state could not be loaded.
    #[error("cannot start the storage sampler: {0}")]
    Sampler(#[from] SamplerError),
}

/// The current billing period of a tenant, when something (a subscription
/// store) knows it better than the calendar month.
pub trait UsagePeriodSource: Send + Sync {
    /// `[start, end)` of the period containing `now_unix_ms`, or `None` to
    /// fall back to the calendar month.
    fn current_period(&self, tenant: TenantId, now_unix_ms: i64) -> Option<(i64, i64)>;
}

/// The billing services of a running server. Cheap to clone.
#[derive(Clone)]
pub struct Billing {
    db: Database,
    meter: Arc<Meter>,
    ledger: Arc<EngineLedger>,
    sampler: Arc<StorageSampler>,
    /// Held from reading the clock to committing a sample, so samples reach
    /// the sampler in time order (it refuses an older one).
    sampling: Arc<Mutex<()>>,
    clock: Arc<dyn Clock>,
    catalog: Arc<Catalog>,
    counters: Arc<UsageCounters>,
    period_source: Arc<OnceLock<Arc<dyn UsagePeriodSource>>>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}

/// The billing database's engine options under `master_key`.
pub fn billing_db_options(master_key: &MasterKey, clock: Arc<dyn Clock>) -> Options {
    Options::default()
        .master_key(master_key.derive(BILLING_KEY_CONTEXT, b""))
        .clock(clock)
}

impl Billing {
    /// Opens `<data_dir>/billing` (encrypted with a key derived from
    /// `master_key`), the usage ledger in it, and starts the meter.
    pub fn open(
        data_dir: &Path,
        master_key: &MasterKey,
        clock: Arc<dyn Clock>,
        meter_flush_interval_ms: u64,
        catalog: Catalog,
    ) -> Result<Billing, BillingOpenError> {
        let db = Database::open(
            data_dir.join(BILLING_DIR),
            billing_db_options(master_key, clock.clone()),
        )?;
        let ledger = Arc::new(EngineLedger::open(db.clone())?);
        let config = MeterConfig {
            flush_interval_ms: meter_flush_interval_ms,
            ..MeterConfig::default()
        };
        let meter = Arc::new(Meter::start(config, ledger.clone(), clock.clone())?);
        let sampler = Arc::new(StorageSampler::open(ledger.clone())?);
        Ok(Billing {
            db,
            meter,
            ledger,
            sampler,
            sampling: Arc::new(Mutex::new(())),
            clock,
            catalog: Arc::new(catalog),
            counters: Arc::new(UsageCounters::default()),
            period_source: Arc::new(OnceLock::new()),
        })
    }

    /// The billing database (subscriptions, invoices live here too).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The usage meter.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// The storage sampler (writes `storage_byte_seconds` into the ledger).
    pub fn storage_sampler(&self) -> &Arc<StorageSampler> {
        &self.sampler
    }

    /// Samples every live tenant's committed stored bytes now (and closes
    /// deleted tenants' last intervals). Blocking; the periodic task and the
    /// shutdown hook call it.
    pub fn sample_storage(&self, tenancy: &Tenancy) -> Result<SampleReport, SamplerError> {
        let _ordered = self.sampling.lock();
        self.sampler.sample_all(tenancy, self.clock.now_unix_ms())
    }

    /// Samples one tenant's committed stored bytes now, so a usage read
    /// includes its storage up to this instant. Blocking.
    pub fn sample_tenant_storage(
        &self,
        tenant: TenantId,
        storage_bytes: u64,
    ) -> Result<SampleReport, SamplerError> {
        let _ordered = self.sampling.lock();
        let key = TenantKey::new(tenant);
        self.sampler
            .sample(key.as_str(), storage_bytes, self.clock.now_unix_ms())
    }

    /// The usage ledger the meter drains into.
    pub fn ledger(&self) -> &Arc<EngineLedger> {
        &self.ledger
    }

    /// The plan catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The sink to pass as `TenancyOptions::usage_sink`.
    pub fn usage_sink(&self) -> Arc<dyn UsageSink> {
        Arc::new(ServerUsageSink {
            meter: self.meter.clone(),
            counters: self.counters.clone(),
        })
    }

    /// The `/metrics` source of the per-tenant usage counters.
    pub fn metrics_source(&self) -> Arc<dyn MetricsSource> {
        Arc::new(UsageMetrics {
            meter: self.meter.clone(),
            counters: self.counters.clone(),
        })
    }

    /// Installs the source of tenants' billing periods (only the first call
    /// has an effect; returns whether this one did).
    pub fn set_period_source(&self, source: Arc<dyn UsagePeriodSource>) -> bool {
        self.period_source.set(source).is_ok()
    }

    /// The billing period source, if one is installed.
    pub fn period_source(&self) -> Option<&Arc<dyn UsagePeriodSource>> {
        self.period_source.get()
    }

    /// Records HTTP body bytes for `tenant` at `at_unix_ms`.
    fn record_bandwidth(&self, tenant: TenantId, metric: &'static str, bytes: u64, at: i64) {
        if bytes == 0 {
            return;
        }
        let slot = if metric == BANDWIDTH_IN_BYTES {
            Slot::BandwidthIn
        } else {
            Slot::BandwidthOut
        };
        self.counters.add(tenant, slot, bytes);
        let key = TenantKey::new(tenant);
        if let Err(err) = Meter::record(&self.meter, key.as_str(), metric, bytes, at, None) {
            tracing::warn!(error = %err, %tenant, metric, "bandwidth not metered");
        }
    }

    /// Takes a final storage sample of every tenant of `tenancy`, stops the
    /// meter (draining everything into the ledger) and closes the billing
    /// database. For the shutdown hook; `tenancy` must still be open.
    pub fn shutdown_with_final_sample(&self, tenancy: &Tenancy) {
        if let Err(err) = self.sample_storage(tenancy) {
            tracing::error!(error = %err, "final storage sample failed; the next start counts the interval");
        }
        self.shutdown();
    }

    /// Stops the meter (draining everything into the ledger) and closes the
    /// billing database. For the shutdown hook.
    pub fn shutdown(&self) {
        if let Err(err) = self.meter.shutdown() {
            tracing::error!(error = %err, "final meter flush failed; retrying once");
            if let Err(err) = self.meter.retry_final_flush() {
                tracing::error!(error = %err, "final meter flush failed again; usage since the last flush is lost");
            }
        }
        if let Err(err) = self.db.close() {
            tracing::error!(error = %err, "closing the billing database failed");
        }
    }
}

/// The counters kept per tenant for `/metrics`.
#[derive(Debug, Clone, Copy)]
enum Slot {
    CallsRead,
    CallsWrite,
    CallsQuery,
    CallsAdmin,
    CallsOther,
    ComputeUs,
    BandwidthIn,
    BandwidthOut,
}

const SLOTS: usize = 8;

/// Cumulative per-tenant usage since the process started, for `/metrics`.
#[derive(Debug, Default)]
struct UsageCounters {
    tenants: RwLock<HashMap<TenantId, Arc<[AtomicU64; SLOTS]>>>,
    other: [AtomicU64; SLOTS],
}

impl UsageCounters {
    fn add(&self, tenant: TenantId, slot: Slot, quantity: u64) {
        let index = slot as usize;
        if let Some(cells) = self.tenants.read().get(&tenant) {
            cells[index].fetch_add(quantity, Ordering::Relaxed);
            return;
        }
        let mut tenants = self.tenants.write();
        if tenants.len() >= USAGE_METRICS_TENANTS_MAX && !tenants.contains_key(&tenant) {
            self.other[index].fetch_add(quantity, Ordering::Relaxed);
            return;
        }
        tenants.entry(tenant).or_default()[index].fetch_add(quantity, Ordering::Relaxed);
    }
}

/// Tenancy's usage sink in the server: counts calls and query time, and
/// forwards the event to the meter with its byte counts zeroed (bandwidth is
/// metered from the HTTP bodies instead).
struct ServerUsageSink {
    meter: Arc<Meter>,
    counters: Arc<UsageCounters>,
}

impl UsageSink for ServerUsageSink {
    fn record(&self, event: UsageEvent) {
        let slot = match event.kind {
            OperationKind::Read => Slot::CallsRead,
            OperationKind::Write => Slot::CallsWrite,
            OperationKind::Query => Slot::CallsQuery,
            OperationKind::Admin => Slot::CallsAdmin,
            _ => Slot::CallsOther,
        };
        self.counters.add(event.tenant, slot, 1);
        if event.kind == OperationKind::Query {
            self.counters
                .add(event.tenant, Slot::ComputeUs, event.duration_us);
        }
        UsageSink::record(
            self.meter.as_ref(),
            UsageEvent {
                bytes_in: 0,
                bytes_out: 0,
                ..event
            },
        );
    }
}

struct UsageMetrics {
    meter: Arc<Meter>,
    counters: Arc<UsageCounters>,
}

impl MetricsSource for UsageMetrics {
    fn collect(&self, out: &mut MetricsWriter) {
        let tenants = self.counters.tenants.read();
        let mut rows: Vec<(String, [u64; SLOTS])> = tenants
            .iter()
            .map(|(id, cells)| (id.to_string(), cells.each_ref().map(load)))
            .collect();
        drop(tenants);
        rows.sort();
        let other = self.counters.other.each_ref().map(load);
        if other.iter().any(|&v| v > 0) {
            rows.push((OTHER_TENANTS_LABEL.to_owned(), other));
        }
        // Kind labels are the meter's metric names without `api_calls.`.
        let calls = [
            (API_CALLS_READ, Slot::CallsRead),
            (API_CALLS_WRITE, Slot::CallsWrite),
            (API_CALLS_QUERY, Slot::CallsQuery),
            (API_CALLS_ADMIN, Slot::CallsAdmin),
            (API_CALLS_OTHER, Slot::CallsOther),
        ];
        let mut samples = Vec::new();
        for (tenant, values) in &rows {
            for (metric, slot) in calls {
                let kind = metric.trim_start_matches("api_calls.");
                samples.push((
                    vec![("tenant", tenant.as_str()), ("kind", kind)],
                    values[slot as usize],
                ));
            }
        }
        write_counter(
            out,
            "aerolith_tenant_api_calls_total",
            "Data API calls per tenant and kind since start.",
            &samples,
        );
        let single = |slot: Slot| -> Vec<(Vec<(&str, &str)>, u64)> {
            rows.iter()
                .map(|(t, v)| (vec![("tenant", t.as_str())], v[slot as usize]))
                .collect()
        };
        write_counter(
            out,
            "aerolith_tenant_query_microseconds_total",
            "Query time per tenant since start (metered as compute_us).",
            &single(Slot::ComputeUs),
        );
        let mut bandwidth = Vec::new();
        for (tenant, values) in &rows {
            bandwidth.push((
                vec![("tenant", tenant.as_str()), ("direction", "in")],
                values[Slot::BandwidthIn as usize],
            ));
            bandwidth.push((
                vec![("tenant", tenant.as_str()), ("direction", "out")],
                values[Slot::BandwidthOut as usize],
            ));
        }
        write_counter(
            out,
            "aerolith_tenant_bandwidth_bytes_total",
            "HTTP body bytes per tenant and direction since start.",
            &bandwidth,
        );
        out.counter(
            "aerolith_meter_dropped_events_total",
            "Usage updates the meter refused (too late, a limit, shut down).",
            &[(&[], self.meter.dropped_events())],
        );
        out.counter(
            "aerolith_meter_failed_drains_total",
            "Meter drains whose ledger write failed (retried).",
            &[(&[], self.meter.failed_drains())],
        );
    }
}

/// Samples every tenant's stored bytes every `interval_ms` (the first
/// sample at once) until `stop` turns true; returns after the sample in
/// progress, if any, has committed. A failed sample is logged and retried
/// at the next tick: the sampler resumes from its last committed state, so
/// nothing is lost, only resolved later.
pub async fn run_storage_sampling(
    billing: Billing,
    tenancy: Tenancy,
    interval_ms: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(interval_ms.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticks.tick() => {}
        }
        let (billing, tenancy) = (billing.clone(), tenancy.clone());
        match tokio::task::spawn_blocking(move || billing.sample_storage(&tenancy)).await {
            Ok(Ok(report)) => tracing::debug!(
                samples = report.samples,
                entries = report.entries_written,
                "storage sampled"
            ),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "storage sample failed; retrying at the next tick")
            }
            Err(err) => tracing::error!(error = %err, "storage sample task failed"),
        }
    }
}

fn load(cell: &AtomicU64) -> u64 {
    cell.load(Ordering::Relaxed)
}

fn write_counter(
    out: &mut MetricsWriter,
    name: &str,
    help: &str,
    samples: &[(Vec<(&str, &str)>, u64)],
) {
    let borrowed: Vec<(&[(&str, &str)], u64)> =
        samples.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
    out.counter(name, help, &borrowed);
}

tokio::task_local! {
    /// The tenant the current request was authenticated as, set by the
    /// handlers, read by [`meter_bandwidth`].
    static METERED_TENANT: Arc<OnceLock<TenantId>>;
}

/// Tells the bandwidth meter which tenant the current request belongs to.
/// Outside [`meter_bandwidth`] (tests driving a handler alone) it does nothing.
pub(crate) fn note_tenant(tenant: TenantId) {
    let _ = METERED_TENANT.try_with(|slot| {
        let _ = slot.set(tenant);
    });
}

/// Counts the request and response body bytes around `inner` (the rest of
/// the request's handling) and, when the handler authenticated a tenant
/// ([`note_tenant`]), records them as that tenant's `bandwidth_in_bytes` /
/// `bandwidth_out_bytes`. The response is counted as it is sent (a streamed
/// export included) and recorded when its last frame is polled or its body
/// dropped. Called by the application's one per-request layer
/// (`app::serve_request`).
pub(crate) async fn meter_bandwidth<F, Fut>(
    state: &AppState,
    request: Request,
    inner: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some(billing) = state.billing_if_open() else {
        return inner(request).await;
    };
    let (parts, body) = request.into_parts();
    // A body that is already over (a GET's) has nothing to count.
    let bytes_in = if http_body::Body::is_end_stream(&body) {
        None
    } else {
        Some(Arc::new(AtomicU64::new(0)))
    };
    let body = match &bytes_in {
        Some(bytes) => Body::new(CountingRequestBody {
            inner: body,
            bytes: bytes.clone(),
        }),
        None => body,
    };
    let request = Request::from_parts(parts, body);
    let slot = Arc::new(OnceLock::new());
    let response = METERED_TENANT.scope(slot.clone(), inner(request)).await;
    let Some(&tenant) = slot.get() else {
        return response;
    };
    let clock = state.clock();
    billing.record_bandwidth(
        tenant,
        BANDWIDTH_IN_BYTES,
        bytes_in.map_or(0, |bytes| bytes.load(Ordering::Relaxed)),
        clock.now_unix_ms(),
    );
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(CountingResponseBody {
            inner: body,
            bytes: 0,
            on_end: Some(OutRecorder {
                state: state.clone(),
                tenant,
            }),
        }),
    )
}

/// A request body that counts the data bytes read through it.
struct CountingRequestBody {
    inner: Body,
    bytes: Arc<AtomicU64>,
}

impl http_body::Body for CountingRequestBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Records a response's bytes out for its tenant, once.
struct OutRecorder {
    /// One `Arc`: the billing service is reached through it when the body
    /// ends (it stays set once open).
    state: AppState,
    tenant: TenantId,
}

/// A response body that counts the data bytes passing through it and
/// records the count once: when the last frame has been polled (before the
/// server writes it, so a client that saw the whole response also sees it
/// metered), or when the body is dropped early (an aborted transfer).
struct CountingResponseBody {
    inner: Body,
    bytes: u64,
    on_end: Option<OutRecorder>,
}

impl CountingResponseBody {
    fn finish(&mut self) {
        if let Some(OutRecorder { state, tenant }) = self.on_end.take() {
            if let Some(billing) = state.billing_if_open() {
                let now_unix_ms = state.clock().now_unix_ms();
                billing.record_bandwidth(tenant, BANDWIDTH_OUT_BYTES, self.bytes, now_unix_ms);
            }
        }
    }
}

impl http_body::Body for CountingResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(_) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountingResponseBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_past_the_cap_share_the_other_series() {
        let counters = UsageCounters::default();
        for raw in 0..(USAGE_METRICS_TENANTS_MAX as u64 + 5) {
            counters.add(TenantId::new(raw + 1), Slot::CallsRead, 1);
        }
        counters.add(TenantId::new(1), Slot::CallsRead, 1);
        assert_eq!(counters.tenants.read().len(), USAGE_METRICS_TENANTS_MAX);
        assert_eq!(load(&counters.other[Slot::CallsRead as usize]), 5);
        assert_eq!(
            load(&counters.tenants.read()[&TenantId::new(1)][Slot::CallsRead as usize]),
            2
        );
    }
}
