//! Integration tests of aerolith-billing (one binary, one module per area).

mod catalog;
mod charge_after_commit;
mod credit_note;
mod invoice;
mod metering;
mod metering_crash;
mod money;
mod no_floats;
mod numbering;
mod payments;
mod price;
mod render;
mod service;
mod service_crash;
mod service_story;
mod storage_sampler;
mod store;
mod subscription;
mod worked_examples;
