//! Two tenants on two plans, one shared and one dedicated: each writes
//! data, one hits its documents quota, one is suspended (reads still work,
//! writes are refused) and resumed, and neither can reach the other.
//!
//! Run with `cargo run --example multi_tenant`.

use std::error::Error;

use aerolith_core::{MasterKey, Query};
use aerolith_tenancy::{
    default_plans, AuditChain, IsolationMode, NewTenant, Principal, QuotaLimits, Slug,
    SuspensionReason, Tenancy, TenancyError, TenancyOptions,
};
use serde_json::json;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    // A tiny "hobby" plan next to the default catalog, so a quota is hit fast.
    let mut plans = default_plans();
    plans.insert(
        "hobby".to_owned(),
        QuotaLimits {
            documents_max: Some(3),
            ..plans["starter"]
        },
    );
    let tenancy = Tenancy::open(
        dir.path(),
        TenancyOptions {
            plans,
            ..TenancyOptions::new(MasterKey::generate())
        },
    )?;
    let operator = Principal::Operator;

    let acme = tenancy.create_tenant(
        &operator,
        NewTenant {
            name: "Acme".into(),
            slug: Slug::new("acme")?,
            plan: "hobby".into(),
            isolation: IsolationMode::Shared,
        },
    )?;
    let globex = tenancy.create_tenant(
        &operator,
        NewTenant {
            name: "Globex".into(),
            slug: Slug::new("globex")?,
            plan: "professional".into(),
            isolation: IsolationMode::Dedicated,
        },
    )?;
    println!(
        "created tenant {} ({}, plan {}, {:?}), owner key {}...",
        acme.tenant.id,
        acme.tenant.slug,
        acme.tenant.plan,
        acme.tenant.isolation,
        &acme.owner_key.secret.expose()[..12]
    );
    println!(
        "created tenant {} ({}, plan {}, {:?}), owner key {}...",
        globex.tenant.id,
        globex.tenant.slug,
        globex.tenant.plan,
        globex.tenant.isolation,
        &globex.owner_key.secret.expose()[..14]
    );

    // Each tenant authenticates with its own key and gets a handle.
    let acme_principal = tenancy.authenticate(acme.owner_key.secret.expose())?;
    let acme_db = tenancy.handle(&acme_principal, acme.tenant.id)?;
    let globex_principal = tenancy.authenticate(globex.owner_key.secret.expose())?;
    let globex_db = tenancy.handle(&globex_principal, globex.tenant.id)?;

    // Both use a collection called "orders"; they never see each other's.
    acme_db.create_collection("orders")?;
    globex_db.create_collection("orders")?;
    globex_db.insert("orders", json!({"_id": "g1", "total": 990}))?;

    // Acme's plan allows 3 documents: the fourth insert is refused.
    for i in 1..=4 {
        match acme_db.insert("orders", json!({"_id": format!("a{i}"), "total": i * 10})) {
            Ok(id) => println!("acme: inserted {id}"),
            Err(TenancyError::QuotaExceeded(quota)) => println!(
                "acme: insert a{i} refused: {} quota, limit {}, in use {}",
                quota.limit, quota.limit_value, quota.current
            ),
            Err(other) => return Err(other.into()),
        }
    }
    println!("acme usage: {:?}", acme_db.usage()?);
    println!(
        "acme sees orders {:?}; globex sees orders {:?}",
        acme_db.list_ids("orders", None, 100)?,
        globex_db.list_ids("orders", None, 100)?
    );

    // Acme's key cannot open Globex's handle.
    match tenancy.handle(&acme_principal, globex.tenant.id) {
        Err(error) => println!("acme -> globex: {error}"),
        Ok(_) => return Err("isolation broken".into()),
    }

    // The operator suspends Globex for non-payment: reads work, writes fail.
    tenancy.suspend_tenant(&operator, globex.tenant.id, SuspensionReason::NonPayment)?;
    let big_orders = Query::filter(&json!({"total": {"$gt": 100}}))?;
    println!(
        "globex (suspended) can still query: {} big order(s)",
        globex_db.count("orders", &big_orders)?
    );
    match globex_db.insert("orders", json!({"_id": "g2"})) {
        Err(error @ TenancyError::Suspended(_)) => println!("globex (suspended) write: {error}"),
        other => return Err(format!("expected a suspension error, got {other:?}").into()),
    }
    tenancy.resume_tenant(&operator, globex.tenant.id)?;
    globex_db.insert("orders", json!({"_id": "g2", "total": 5}))?;
    println!("globex resumed and wrote g2");

    // Everything above that changed a tenant is in the audit chains.
    tenancy.verify_audit_log(&operator, AuditChain::Operator)?;
    for entry in tenancy.audit_log(&operator, AuditChain::Operator, 0, 100)? {
        println!("audit #{}: {:?} {}", entry.seq, entry.action, entry.target);
    }
    Ok(())
}
