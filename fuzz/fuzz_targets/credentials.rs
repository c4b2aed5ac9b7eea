//! Fuzz target `credentials`: see `aerolith_fuzz::credentials` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::credentials(data);
});
