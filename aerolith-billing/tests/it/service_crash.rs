//! Crash test of invoice finalization: a child process (this test binary,
//! re-executed) finalizes invoices in a loop on a `Durability::Always`
//! billing database and prints each acknowledged invoice; the parent kills
//! it with SIGKILL after a random number of acknowledgements, reopens the
//! service (which checks that every number series holds exactly
//! `1..=counter`), and checks that every acknowledged invoice is present
//! with its number. `AEROLITH_BILLING_CRASH_CYCLES` raises the number of
//! cycles for a soak run (default 12).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use aerolith_billing::payment::test_provider::TestProvider;
use aerolith_billing::{
    BillingInterval, BillingService, BillingServiceOptions, Catalog, InMemoryTenantControl,
    InvoiceId, SubscribeRequest,
};
use aerolith_core::{Database, Durability, ManualClock, Options};
use aerolith_tenancy::TenantId;
use rand::{Rng, SeedableRng};

use crate::service::NOV_1_2026_UNIX_MS;

const CHILD_ENV: &str = "AEROLITH_BILLING_CRASH_CHILD_DIR";
const CYCLE_ENV: &str = "AEROLITH_BILLING_CRASH_CYCLE";
/// Tenants per cycle, so every cycle's tenants are new.
const TENANTS_PER_CYCLE: u64 = 1_000_000;

fn open(dir: &str) -> BillingService {
    let db = Database::open(dir, Options::default().durability(Durability::Always))
        .expect("opens the billing database");
    let options = BillingServiceOptions::new(Arc::new(InMemoryTenantControl::new()))
        .auto_charge(Arc::new(TestProvider::new()));
    BillingService::open(
        db,
        Catalog::default_catalog(),
        Arc::new(ManualClock::new(NOV_1_2026_UNIX_MS)),
        options,
    )
    .expect("reopens with gapless numbers")
}

/// The child's body: runs only when the parent re-executes this test binary.
#[test]
fn crash_child_finalizes_invoices() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = std::env::var(CYCLE_ENV)
        .expect("cycle set")
        .parse()
        .expect("a number");
    let service = open(&dir);
    let mut stdout = std::io::stdout();
    for i in 0..TENANTS_PER_CYCLE {
        let tenant = TenantId::new(cycle * TENANTS_PER_CYCLE + i + 1);
        // No payment method: the invoice is finalized and stays open.
        let invoice = service
            .subscribe(
                tenant,
                SubscribeRequest {
                    plan_id: "starter".into(),
                    interval: BillingInterval::Monthly,
                    trial_days: None,
                    payment_method: None,
                },
            )
            .expect("subscribes")
            .invoice
            .expect("invoiced");
        let number = invoice.number().expect("numbered");
        writeln!(stdout, "ack {} {} {}", tenant.get(), invoice.id(), number).expect("stdout");
        stdout.flush().expect("stdout");
    }
}

#[test]
fn acknowledged_invoices_survive_sigkill_with_gapless_numbers() {
    let cycles: u64 = std::env::var("AEROLITH_BILLING_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_text = dir.path().to_str().expect("utf-8 path").to_owned();
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xB111);
    let mut acked: Vec<(TenantId, InvoiceId, String)> = Vec::new();
    for cycle in 0..cycles {
        let kill_after: usize = rng.random_range(1..40);
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "service_crash::crash_child_finalizes_invoices",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir_text)
            .env(CYCLE_ENV, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns the child");
        let reader = BufReader::new(child.stdout.take().expect("piped"));
        let mut seen = 0;
        for line in reader.lines() {
            let line = line.expect("reads");
            let parts: Vec<&str> = line.split(' ').collect();
            let ["ack", tenant, invoice, number] = parts.as_slice() else {
                continue; // the test harness's own output
            };
            let tenant = TenantId::new(tenant.parse().expect("tenant id"));
            acked.push((
                tenant,
                InvoiceId((*invoice).to_owned()),
                (*number).to_owned(),
            ));
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");

        // Opening checks every series is exactly 1..=counter.
        let service = open(&dir_text);
        for (tenant, invoice_id, number) in &acked {
            let invoice = service
                .invoice(*tenant, invoice_id)
                .unwrap_or_else(|e| panic!("cycle {cycle}: acknowledged {invoice_id} lost: {e}"));
            assert_eq!(
                invoice.number().map(ToString::to_string).as_deref(),
                Some(number.as_str())
            );
        }
    }
    assert!(!acked.is_empty());
    eprintln!(
        "billing crash test: {cycles} SIGKILL cycles, {} acknowledged invoices checked",
        acked.len()
    );
}
