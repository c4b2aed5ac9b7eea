//! Fuzz target `catalog_load`: see `aerolith_fuzz::catalog_load` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::catalog_load(data);
});
