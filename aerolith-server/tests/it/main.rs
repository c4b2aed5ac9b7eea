//! Integration tests of aerolith-server: the HTTP application driven without
//! a socket (tower `oneshot`), the accept loop on loopback, and the real
//! `aerolith` binary end to end.

mod admin_routes;
mod billing_routes;
mod cli_binary;
mod errors;
mod limits;
mod observability;
mod readme_tour;
mod serving;
mod support;
mod tenant_routes;
