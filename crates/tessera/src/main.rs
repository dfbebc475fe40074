use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tune_malloc();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(tessera::cli::run(tessera::cli::Cli::parse()))
}

/// Fixes glibc's mmap threshold at 1 MiB. glibc is no longer the global allocator
/// (mimalloc is), but it still serves what asks for the system allocator by name: the
/// hash workers' Argon2 memory. By default glibc raises the threshold to the
/// size of the largest block freed so far: after the first Argon2id hash (19 MiB with the
/// defaults) every later hash block comes from a per-thread arena and stays there, so
/// each blocking-pool thread that ever hashed keeps ~19 MiB (measured: RSS ~1 GB after
/// 60 sign-ups; 16 MiB with this). Setting the threshold explicitly turns the dynamic
/// adjustment off: large blocks are mmapped and handed back to the kernel on free.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
