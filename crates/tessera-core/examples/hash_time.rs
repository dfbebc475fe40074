//! Single-thread Argon2id verify time with the server's parameters, for `bench/run`'s
//! login efficiency. Reads the same settings the server reads (ARGON2_* from the
//! environment or `.env`), verifies through the same `PasswordHasher` with one worker,
//! and prints one JSON object. Usage: `hash_time [SAMPLES]`.

use std::time::Instant;

use secrecy::SecretString;
use tessera_core::hasher::PasswordHasher;
use tessera_core::settings::Settings;

fn main() -> Result<(), String> {
    let samples: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20).max(3);
    let s = Settings::from_process_env().map_err(|p| p.join("\n"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let hasher = PasswordHasher::new(s.argon2_memory_kib, s.argon2_iterations, s.argon2_parallelism, 1, 0)?;
    let password = SecretString::from("Bench-Passw0rd!x");
    let mut times = rt.block_on(async {
        let hash = hasher.hash(&password).await.map_err(|e| e.to_string())?;
        // One untimed verify warms the allocator and the CPU.
        hasher.verify(&password, Some(&hash)).await.map_err(|e| e.to_string())?;
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let verdict = hasher.verify(&password, Some(&hash)).await.map_err(|e| e.to_string())?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if !verdict.matches {
                return Err("the password did not verify".to_owned());
            }
        }
        Ok::<_, String>(times)
    })?;
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"m_kib\":{},\"t\":{},\"p\":{},\"samples\":{},\"median_ms\":{:.3},\"min_ms\":{:.3},\"max_ms\":{:.3}}}",
        s.argon2_memory_kib,
        s.argon2_iterations,
        s.argon2_parallelism,
        samples,
        times[samples / 2],
        times[0],
        times[samples - 1]
    );
    Ok(())
}
