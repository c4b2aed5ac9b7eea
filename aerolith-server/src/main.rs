//! The `aerolith` binary: all logic is in the library (`aerolith_server`).
fn main() -> std::process::ExitCode {
    aerolith_server::run_cli(std::env::args_os())
}
