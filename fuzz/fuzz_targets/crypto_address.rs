//! Fuzz target `crypto_address`: see `aerolith_fuzz::crypto_address` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::crypto_address(data);
});
