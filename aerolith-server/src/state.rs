//! The state every handler shares: limits, the admin key hash, metrics,
//! readiness, the clock, the tenant registry, the billing services (meter,
//! billing database, catalog), and the hooks to run at shutdown.
//!
//! Handlers reach the tenant registry through [`AppState::tenancy`], never
//! through globals. Cloning an `AppState` is cheap (one `Arc`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aerolith_tenancy::Tenancy;

use aerolith_core::{Clock, SystemClock};
use parking_lot::Mutex;

use crate::config::ServerConfig;
use crate::metering::Billing;
use crate::metrics::Metrics;
use crate::secrets::AdminKeyHash;

/// The request limits the HTTP layer enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest accepted request body.
    pub request_body_bytes_max: u64,
    /// Deepest accepted JSON nesting.
    pub json_depth_max: u32,
    /// Deadline for handling one request.
    pub request_timeout_ms: u64,
}

impl HttpLimits {
    /// The limits of a resolved configuration.
    pub fn from_config(config: &ServerConfig) -> HttpLimits {
        HttpLimits {
            request_body_bytes_max: config.request_body_bytes_max,
            json_depth_max: config.json_depth_max,
            request_timeout_ms: config.request_timeout_ms,
        }
    }

    /// The request deadline as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits::from_config(&ServerConfig::default())
    }
}

/// Work to do once the server has stopped serving (flush metering, flush the
/// log). Runs on a plain thread after the last in-flight request finished.
pub type ShutdownHook = Box<dyn FnOnce() + Send + 'static>;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    limits: HttpLimits,
    admin_key_hash: AdminKeyHash,
    metrics: Metrics,
    ready: AtomicBool,
    clock: Arc<dyn Clock>,
    shutdown_hooks: Mutex<Vec<ShutdownHook>>,
    tenancy: OnceLock<Tenancy>,
    billing: OnceLock<Billing>,
    billing_service: OnceLock<Arc<aerolith_billing::BillingService>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("limits", &self.inner.limits)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// New state, not yet ready, with the system clock.
    pub fn new(limits: HttpLimits, admin_key_hash: AdminKeyHash) -> AppState {
        AppState::with_clock(limits, admin_key_hash, Arc::new(SystemClock))
    }

    /// New state, not yet ready, with the given clock (tests pass a
    /// `ManualClock` to control request durations).
    pub fn with_clock(
        limits: HttpLimits,
        admin_key_hash: AdminKeyHash,
        clock: Arc<dyn Clock>,
    ) -> AppState {
        AppState {
            inner: Arc::new(StateInner {
                limits,
                admin_key_hash,
                metrics: Metrics::new(),
                ready: AtomicBool::new(false),
                clock,
                shutdown_hooks: Mutex::new(Vec::new()),
                tenancy: OnceLock::new(),
                billing: OnceLock::new(),
                billing_service: OnceLock::new(),
            }),
        }
    }

    /// The request limits.
    pub fn limits(&self) -> &HttpLimits {
        &self.inner.limits
    }

    /// The metrics registry; register extra sources on it.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Marks the server ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` reports ready.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Installs the tenant registry the data routes serve. Only the first
    /// call has an effect; returns whether this call installed it.
    pub fn set_tenancy(&self, tenancy: Tenancy) -> bool {
        self.inner.tenancy.set(tenancy).is_ok()
    }

    /// The tenant registry, or `unavailable` while none is installed.
    pub fn tenancy(&self) -> Result<&Tenancy, crate::error::ApiError> {
        self.inner
            .tenancy
            .get()
            .ok_or_else(|| crate::error::ApiError::Unavailable {
                reason: "the tenant registry is not open".to_owned(),
            })
    }

    /// Installs the billing services (meter, billing database, catalog).
    /// Only the first call has an effect; returns whether this call did.
    pub fn set_billing(&self, billing: Billing) -> bool {
        self.inner.billing.set(billing).is_ok()
    }

    /// The billing services, or `unavailable` while none are installed.
    pub fn billing(&self) -> Result<&Billing, crate::error::ApiError> {
        self.billing_if_open()
            .ok_or_else(|| crate::error::ApiError::Unavailable {
                reason: "the billing services are not open".to_owned(),
            })
    }

    /// Installs the billing service (subscriptions, invoices, payments).
    /// Only the first call has an effect; returns whether this call did.
    pub fn set_billing_service(&self, service: Arc<aerolith_billing::BillingService>) -> bool {
        self.inner.billing_service.set(service).is_ok()
    }

    /// The billing service, or `unavailable` while none is installed.
    pub fn billing_service(
        &self,
    ) -> Result<&Arc<aerolith_billing::BillingService>, crate::error::ApiError> {
        self.inner
            .billing_service
            .get()
            .ok_or_else(|| crate::error::ApiError::Unavailable {
                reason: "the billing service is not open".to_owned(),
            })
    }

    /// The billing services, if installed.
    pub fn billing_if_open(&self) -> Option<&Billing> {
        self.inner.billing.get()
    }

    /// Registers work to run at shutdown, after in-flight requests finished.
    /// Hooks run in registration order.
    pub fn on_shutdown(&self, hook: impl FnOnce() + Send + 'static) {
        self.inner.shutdown_hooks.lock().push(Box::new(hook));
    }

    /// Runs and removes every registered shutdown hook; returns how many ran.
    /// A panicking hook is logged and does not stop the others.
    pub fn run_shutdown_hooks(&self) -> usize {
        let hooks = std::mem::take(&mut *self.inner.shutdown_hooks.lock());
        let count = hooks.len();
        for hook in hooks {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
                tracing::error!("a shutdown hook panicked");
            }
        }
        count
    }

    pub(crate) fn admin_key_hash(&self) -> &AdminKeyHash {
        &self.inner.admin_key_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn shutdown_hooks_run_once_in_order_even_if_one_panics() {
        let state = AppState::new(HttpLimits::default(), AdminKeyHash::of("k"));
        let order = Arc::new(Mutex::new(Vec::new()));
        let ran = Arc::new(AtomicUsize::new(0));
        let (o1, o2) = (order.clone(), order.clone());
        state.on_shutdown(move || o1.lock().push(1));
        state.on_shutdown(|| panic!("hook failure"));
        let r = ran.clone();
        state.on_shutdown(move || {
            o2.lock().push(3);
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(state.run_shutdown_hooks(), 3);
        assert_eq!(*order.lock(), vec![1, 3]);
        assert_eq!(state.run_shutdown_hooks(), 0, "hooks run once");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
