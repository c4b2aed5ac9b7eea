//! Fuzz target `record_decode`: see `aerolith_fuzz::record_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::record_decode(data);
});
