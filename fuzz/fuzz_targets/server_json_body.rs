//! Fuzz target `server_json_body`: see `aerolith_fuzz::server_json_body` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::server_json_body(data);
});
