//! Fuzz target `webhook_verify`: see `aerolith_fuzz::webhook_verify` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::webhook_verify(data);
});
