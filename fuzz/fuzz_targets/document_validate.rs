//! Fuzz target `document_validate`: see `aerolith_fuzz::document_validate` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aerolith_fuzz::document_validate(data);
});
