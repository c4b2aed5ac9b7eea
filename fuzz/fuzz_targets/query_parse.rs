//! Fuzz target `query_parse`: see `aerolith_fuzz::query_parse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::query_parse(data);
});
