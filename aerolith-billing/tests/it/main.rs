//! Integration tests of aerolith-billing (one binary, one module per area).

mod catalog;
mod invoice;
mod money;
mod price;
