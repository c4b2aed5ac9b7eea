//! The `aerolith` binary: all logic is in the library (`aerolith_server`).

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small buffers on several threads, where glibc's malloc spent about
/// a sixth of the server's CPU (arena locks, consolidation) in the load
/// bench's profile. See BENCHMARKS.md, "HTTP load".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aerolith_server::run_cli(std::env::args_os())
}
