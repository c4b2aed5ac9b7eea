//! # Aerolith
//!
//! An embeddable, multi-tenant JSON document database with the
//! database-as-a-service layer built in. This facade re-exports the library
//! crates so an application can depend on one name:
//!
//! - [`core`] — the storage engine (`aerolith-core`): durable, encrypted,
//!   queryable collections of JSON documents.
//! - [`tenancy`] — tenants, isolation, API keys, roles, quotas, rate limits
//!   and the audit log (`aerolith-tenancy`).
//! - [`billing`] — metering, the usage ledger, plans, subscriptions,
//!   invoices, dunning and payments (`aerolith-billing`).
//!
//! The HTTP server and the `aerolith` command live in `aerolith-server`.

pub use aerolith_billing as billing;
pub use aerolith_core as core;
pub use aerolith_tenancy as tenancy;
