//! Offline maintenance of a tenancy directory while no server holds it:
//! [`verify_offline`] checks every record of every engine (system, shared,
//! each dedicated tenant) and every audit chain (operator and each tenant);
//! [`compact_offline`] compacts every engine.
//!
//! Both take each engine's directory lock, so they refuse with
//! `aerolith_core::Error::Locked` (inside [`OfflineError::Engine`]) while a
//! server has the directory open. Verification reads engines without
//! changing them, except that reading the tenant records and audit chains
//! opens the system database, whose recovery truncates a torn tail exactly
//! as the next server start would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aerolith_core::{CompactionReport, Database, MasterKey, Options, Query, VerifyReport};

use crate::audit::AuditLog;
use crate::error::AuditError;
use crate::ids::TenantId;
use crate::registry::{
    tenant_key, IsolationMode, StoredTenant, SHARED_KEY_CONTEXT, SYSTEM_KEY_CONTEXT,
};
use crate::system_store::{SystemAuditStore, TENANTS};

/// One engine that was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineCheck {
    /// `system`, `shared` or `tenant <id>`.
    pub engine: String,
    /// Its directory.
    pub path: PathBuf,
    /// What was read.
    pub report: VerifyReport,
}

/// What [`verify_offline`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineVerifyReport {
    /// Every engine, in the order checked.
    pub engines: Vec<EngineCheck>,
    /// Audit chains walked (the operator's and one per tenant).
    pub audit_chains: u64,
}

/// Why an offline check or compaction failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// An engine failed to verify, open or compact (corruption carries the
    /// file and offset; a running server is `Locked`).
    #[error("{engine} ({}): {source}", path.display())]
    Engine {
        /// `system`, `shared` or `tenant <id>`.
        engine: String,
        /// Its directory.
        path: PathBuf,
        /// The engine error.
        source: aerolith_core::Error,
    },
    /// An audit chain is broken.
    #[error("audit chain of {chain}: {source}")]
    Audit {
        /// `operator` or `tenant <id>`.
        chain: String,
        /// The finding.
        source: AuditError,
    },
    /// A tenant record in the system database does not parse.
    #[error("tenant record {id} in the system database is malformed: {detail}")]
    MalformedTenant {
        /// The record's id.
        id: String,
        /// What was wrong.
        detail: String,
    },
}

/// An engine of the directory: name, path and key.
struct EngineDir {
    engine: String,
    path: PathBuf,
    key: MasterKey,
}

fn engine_err(engine: &EngineDir) -> impl Fn(aerolith_core::Error) -> OfflineError + '_ {
    move |source| OfflineError::Engine {
        engine: engine.engine.clone(),
        path: engine.path.clone(),
        source,
    }
}

fn system_and_shared(dir: &Path, master_key: &MasterKey) -> [EngineDir; 2] {
    [
        EngineDir {
            engine: "system".to_owned(),
            path: dir.join("system"),
            key: master_key.derive(SYSTEM_KEY_CONTEXT, b""),
        },
        EngineDir {
            engine: "shared".to_owned(),
            path: dir.join("shared"),
            key: master_key.derive(SHARED_KEY_CONTEXT, b""),
        },
    ]
}

/// Engine options: the key, and never create a missing database (a typo in
/// the data directory must not produce an empty, "valid" one).
fn options(key: &MasterKey) -> Options {
    let mut options = Options::default().master_key(key.clone());
    options.create_if_missing = false;
    options
}

/// The live tenants' records.
fn tenant_records(
    system: &Database,
    engine: &EngineDir,
) -> Result<Vec<StoredTenant>, OfflineError> {
    let docs = system
        .find(TENANTS, &Query::default())
        .map_err(engine_err(engine))?;
    docs.into_iter()
        .map(|mut doc| {
            let id = doc["_id"].to_string();
            let record = doc
                .get_mut("record")
                .map(serde_json::Value::take)
                .unwrap_or_default();
            serde_json::from_value::<StoredTenant>(record).map_err(|e| {
                OfflineError::MalformedTenant {
                    id,
                    detail: e.to_string(),
                }
            })
        })
        .collect()
}

fn dedicated_engines(
    dir: &Path,
    master_key: &MasterKey,
    records: &[StoredTenant],
) -> Vec<EngineDir> {
    records
        .iter()
        .filter(|stored| {
            !stored.tenant.is_deleted() && stored.tenant.isolation == IsolationMode::Dedicated
        })
        .filter_map(|stored| {
            let id = stored.tenant.id;
            Some(EngineDir {
                engine: format!("tenant {id}"),
                path: dir.join("tenants").join(id.to_string()),
                key: tenant_key(master_key, id, stored.key_salt.as_ref()?),
            })
        })
        .collect()
}

fn verify_audit(system: &Arc<Database>, records: &[StoredTenant]) -> Result<u64, OfflineError> {
    let clock: Arc<dyn aerolith_core::Clock> = Arc::new(aerolith_core::SystemClock);
    let mut chains: Vec<(String, SystemAuditStore)> = vec![(
        "operator".to_owned(),
        SystemAuditStore::operator(system.clone()),
    )];
    let mut ids: Vec<TenantId> = records.iter().map(|stored| stored.tenant.id).collect();
    ids.sort();
    for id in ids {
        chains.push((
            format!("tenant {id}"),
            SystemAuditStore::tenant(system.clone(), id),
        ));
    }
    let count = chains.len() as u64;
    for (chain, store) in chains {
        let audit_err = |source| OfflineError::Audit {
            chain: chain.clone(),
            source,
        };
        AuditLog::open(store, clock.clone())
            .map_err(audit_err)?
            .verify()
            .map_err(audit_err)?;
    }
    Ok(count)
}

/// Verifies every engine and audit chain under `dir` (a [`crate::Tenancy`]
/// directory) with the operator's `master_key`, calling `on_engine` after
/// each engine. Stops at the first failure.
pub fn verify_offline(
    dir: &Path,
    master_key: &MasterKey,
    on_engine: &mut dyn FnMut(&EngineCheck),
) -> Result<OfflineVerifyReport, OfflineError> {
    let mut report = OfflineVerifyReport::default();
    let [system, shared] = system_and_shared(dir, master_key);
    let mut check = |engine: &EngineDir| -> Result<(), OfflineError> {
        let verified = Database::verify_offline(&engine.path, &options(&engine.key))
            .map_err(engine_err(engine))?;
        let checked = EngineCheck {
            engine: engine.engine.clone(),
            path: engine.path.clone(),
            report: verified,
        };
        on_engine(&checked);
        report.engines.push(checked);
        Ok(())
    };
    check(&system)?;
    let system_db =
        Arc::new(Database::open(&system.path, options(&system.key)).map_err(engine_err(&system))?);
    let outcome = tenant_records(&system_db, &system).and_then(|records| {
        let chains = verify_audit(&system_db, &records)?;
        Ok((records, chains))
    });
    system_db.close().map_err(engine_err(&system))?;
    let (records, audit_chains) = outcome?;
    check(&shared)?;
    for engine in dedicated_engines(dir, master_key, &records) {
        check(&engine)?;
    }
    report.audit_chains = audit_chains;
    Ok(report)
}

/// Compacts every engine under `dir` (system, shared, each dedicated
/// tenant), calling `on_engine` after each. Returns the reports in order.
pub fn compact_offline(
    dir: &Path,
    master_key: &MasterKey,
    on_engine: &mut dyn FnMut(&str, &CompactionReport),
) -> Result<Vec<(String, CompactionReport)>, OfflineError> {
    let [system, shared] = system_and_shared(dir, master_key);
    let mut reports = Vec::new();
    let mut compact = |engine: &EngineDir, db: &Database| -> Result<(), OfflineError> {
        let report = db.compact().map_err(engine_err(engine))?;
        on_engine(&engine.engine, &report);
        reports.push((engine.engine.clone(), report));
        Ok(())
    };
    let system_db =
        Database::open(&system.path, options(&system.key)).map_err(engine_err(&system))?;
    let outcome = tenant_records(&system_db, &system).and_then(|records| {
        compact(&system, &system_db)?;
        Ok(records)
    });
    system_db.close().map_err(engine_err(&system))?;
    let records = outcome?;
    let mut engines = vec![shared];
    engines.extend(dedicated_engines(dir, master_key, &records));
    for engine in &engines {
        let db = Database::open(&engine.path, options(&engine.key)).map_err(engine_err(engine))?;
        let compacted = compact(engine, &db);
        db.close().map_err(engine_err(engine))?;
        compacted?;
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewTenant, Principal, Slug, Tenancy, TenancyOptions};
    use serde_json::json;

    fn populated(dir: &Path, key: &MasterKey) -> TenantId {
        let tenancy = Tenancy::open(dir, TenancyOptions::new(key.clone())).expect("opens");
        let mut dedicated = None;
        for (slug, isolation) in [
            ("alpha", IsolationMode::Shared),
            ("beta", IsolationMode::Dedicated),
        ] {
            let created = tenancy
                .create_tenant(
                    &Principal::Operator,
                    NewTenant {
                        name: slug.to_owned(),
                        slug: Slug::new(slug).expect("slug"),
                        plan: "starter".to_owned(),
                        isolation,
                    },
                )
                .expect("created");
            let id = created.tenant.id;
            let handle = tenancy.handle(&Principal::Operator, id).expect("handle");
            handle.create_collection("c").expect("collection");
            for i in 0..10 {
                handle
                    .insert("c", json!({"_id": format!("d{i}"), "n": i}))
                    .expect("inserted");
            }
            handle.delete("c", "d0").expect("deleted");
            if isolation == IsolationMode::Dedicated {
                dedicated = Some(id);
            }
        }
        tenancy.close().expect("closes");
        dedicated.expect("a dedicated tenant")
    }

    #[test]
    fn every_engine_and_chain_verifies_then_compacts_and_verifies_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = MasterKey::from_bytes([3; 32]);
        let dedicated = populated(dir.path(), &key);
        let mut seen = Vec::new();
        let report = verify_offline(dir.path(), &key, &mut |check| {
            seen.push(check.engine.clone())
        })
        .expect("verifies");
        assert_eq!(
            seen,
            vec![
                "system".to_owned(),
                "shared".to_owned(),
                format!("tenant {dedicated}")
            ]
        );
        assert_eq!(report.audit_chains, 3, "operator plus two tenants");
        assert!(report.engines.iter().all(|e| e.report.records > 0));
        let compacted = compact_offline(dir.path(), &key, &mut |_, _| {}).expect("compacts");
        assert_eq!(compacted.len(), 3);
        verify_offline(dir.path(), &key, &mut |_| {}).expect("still verifies");
        let tenancy = Tenancy::open(dir.path(), TenancyOptions::new(key)).expect("reopens");
        let handle = tenancy
            .handle(&Principal::Operator, dedicated)
            .expect("handle");
        assert_eq!(
            handle.get("c", "d5").expect("reads"),
            Some(json!({"_id": "d5", "n": 5}))
        );
        assert_eq!(handle.get("c", "d0").expect("reads"), None);
        tenancy.close().expect("closes");
    }

    #[test]
    fn an_open_registry_is_refused_and_a_wrong_key_is_an_engine_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = MasterKey::from_bytes([3; 32]);
        populated(dir.path(), &key);
        let tenancy = Tenancy::open(dir.path(), TenancyOptions::new(key.clone())).expect("opens");
        let err = verify_offline(dir.path(), &key, &mut |_| {}).expect_err("locked");
        assert!(matches!(
            err,
            OfflineError::Engine {
                source: aerolith_core::Error::Locked { .. },
                ..
            }
        ));
        let err = compact_offline(dir.path(), &key, &mut |_, _| {}).expect_err("locked");
        assert!(matches!(
            err,
            OfflineError::Engine {
                source: aerolith_core::Error::Locked { .. },
                ..
            }
        ));
        tenancy.close().expect("closes");
        let wrong = MasterKey::from_bytes([4; 32]);
        let err = verify_offline(dir.path(), &wrong, &mut |_| {}).expect_err("wrong key");
        assert!(matches!(
            err,
            OfflineError::Engine {
                source: aerolith_core::Error::WrongKey { .. },
                ..
            }
        ));
    }
}
