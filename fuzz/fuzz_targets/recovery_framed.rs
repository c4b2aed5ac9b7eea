//! Fuzz target `recovery_framed`: see `aerolith_fuzz::recovery_framed` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::recovery_framed(data);
});
