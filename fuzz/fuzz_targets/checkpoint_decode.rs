//! Fuzz target `checkpoint_decode`: see `aerolith_fuzz::checkpoint_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::checkpoint_decode(data);
});
