//! Fuzz target `recovery`: see `aerolith_fuzz::recovery` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::recovery(data);
});
