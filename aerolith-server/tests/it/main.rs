//! Integration tests of aerolith-server: the HTTP application driven without
//! a socket (tower `oneshot`), the accept loop on loopback, and the real
//! `aerolith` binary end to end.

mod admin_routes;
mod billing_routes;
mod cli_binary;
mod error_statuses;
mod errors;
mod limits;
mod observability;
mod operations;
mod operator_transfer;
mod readme_tour;
mod serving;
mod serving_path;
mod storage_metering;
mod support;
mod tenant_routes;
