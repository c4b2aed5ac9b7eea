//! Scale check: creates many Shared tenants in one process (10,000 by
//! default, or the first argument), each with one collection and one
//! document, then reports the time taken, the resident memory per idle
//! tenant and how long the registry takes to reopen.
//!
//! Run with `cargo run --release -p aerolith-tenancy --example tenant_scale [N]`.
//! Linux only for the memory figure (it reads `/proc/self/statm`).

use std::error::Error;
use std::time::Instant;

use aerolith_core::{Durability, MasterKey};
use aerolith_tenancy::{IsolationMode, NewTenant, Principal, Slug, Tenancy, TenancyOptions};
use serde_json::json;

/// Resident set size in bytes, if the platform tells.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident_pages * 4096)
}

fn main() -> Result<(), Box<dyn Error>> {
    let count: u64 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 10_000,
    };
    let dir = tempfile::tempdir()?;
    let options = TenancyOptions {
        durability: Durability::Never,
        ..TenancyOptions::new(MasterKey::from_bytes([3; 32]))
    };
    let tenancy = Tenancy::open(dir.path(), options.clone())?;
    let rss_before = rss_bytes();
    let started = Instant::now();
    for i in 0..count {
        let created = tenancy.create_tenant(
            &Principal::Operator,
            NewTenant {
                name: format!("Tenant {i}"),
                slug: Slug::new(&format!("tenant-{i}"))?,
                plan: "starter".into(),
                isolation: IsolationMode::Shared,
            },
        )?;
        let principal = tenancy.authenticate(created.owner_key.secret.expose())?;
        let handle = tenancy.handle(&principal, created.tenant.id)?;
        handle.create_collection("items")?;
        handle.insert("items", json!({"_id": "first", "n": i}))?;
    }
    let elapsed = started.elapsed();
    let rss_after = rss_bytes();
    println!(
        "created {count} shared tenants (each: record, owner key, 4 audit entries, 1 collection, 1 document) in {:.2} s ({:.0} us per tenant)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "resident memory grew by {:.1} MiB: {:.0} bytes per idle tenant",
            (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
            after.saturating_sub(before) as f64 / count as f64
        );
    }
    tenancy.close()?;
    drop(tenancy);
    let started = Instant::now();
    let reopened = Tenancy::open(dir.path(), options)?;
    println!(
        "reopened the registry with {count} tenants in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let page = reopened.list_tenants(&Principal::Operator, None, 10)?;
    println!("first page after reopen: {} tenants", page.tenants.len());
    Ok(())
}
