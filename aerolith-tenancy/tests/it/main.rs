//! Integration tests of aerolith-tenancy, through its public API only.

mod api_keys;
mod audit;
mod concurrency;
mod crash_delete;
mod credential_cache;
mod errors;
mod fixtures;
mod handle;
mod ids;
mod isolation;
mod pending_writes;
mod quota;
mod rate_limit;
mod registry;
mod roles;
mod tokens;
mod usage;
