//! A registry in a temporary directory with a manual clock and a recording
//! usage sink, shared by the registry-level tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use aerolith_core::{Durability, ManualClock, MasterKey};
use aerolith_tenancy::{
    default_plans, IsolationMode, NewTenant, Principal, QuotaLimits, RecordingSink, Slug, Tenancy,
    TenancyOptions, Tenant,
};

pub const START_UNIX_MS: i64 = 1_700_000_000_000;

/// The default catalog plus `unlimited` (no limits at all, so tests that
/// never advance the clock are not rate limited).
pub fn test_plans() -> BTreeMap<String, QuotaLimits> {
    let mut plans = default_plans();
    plans.insert("unlimited".to_owned(), QuotaLimits::UNLIMITED);
    plans
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub master: MasterKey,
    pub clock: Arc<ManualClock>,
    pub sink: Arc<RecordingSink>,
    pub plans: BTreeMap<String, QuotaLimits>,
    pub tenancy: Tenancy,
}

pub fn options(
    fx_master: &MasterKey,
    clock: &Arc<ManualClock>,
    sink: &Arc<RecordingSink>,
    plans: &BTreeMap<String, QuotaLimits>,
) -> TenancyOptions {
    TenancyOptions {
        master_key: fx_master.clone(),
        clock: clock.clone(),
        usage_sink: sink.clone(),
        plans: plans.clone(),
        durability: Durability::Never,
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_plans(test_plans())
    }

    pub fn with_plans(plans: BTreeMap<String, QuotaLimits>) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let master = MasterKey::from_bytes([7; 32]);
        let clock = Arc::new(ManualClock::new(START_UNIX_MS));
        let sink = Arc::new(RecordingSink::new());
        let tenancy =
            Tenancy::open(dir.path(), options(&master, &clock, &sink, &plans)).expect("open");
        Fixture {
            dir,
            master,
            clock,
            sink,
            plans,
            tenancy,
        }
    }

    /// Closes and reopens the registry in the same directory.
    pub fn reopen(&mut self) {
        self.tenancy.close().expect("close");
        let fresh = Tenancy::open(
            self.dir.path(),
            options(&self.master, &self.clock, &self.sink, &self.plans),
        )
        .expect("reopen");
        self.tenancy = fresh;
    }

    /// Creates a tenant; returns it and its owner key text.
    pub fn create(&self, slug: &str, plan: &str, isolation: IsolationMode) -> (Tenant, String) {
        let created = self
            .tenancy
            .create_tenant(
                &Principal::Operator,
                NewTenant {
                    name: format!("{slug} Inc."),
                    slug: Slug::new(slug).expect("valid slug"),
                    plan: plan.to_owned(),
                    isolation,
                },
            )
            .expect("create tenant");
        (created.tenant, created.owner_key.secret.expose().to_owned())
    }
}
