//! Aerolith billing: metering, usage ledger, subscriptions, proration,
//! dunning and payments.
//!
//! (billing-b's local lib.rs; the lead merges it with billing-a's.)

pub mod dunning;
pub mod metering;
pub mod payment;
pub mod period;
pub mod proration;
pub mod subscription;
