//! Password hashing (SPEC §5.1): Argon2id for new hashes; bcrypt and Argon2 hashes with
//! other parameters verified and flagged for re-hashing. Work runs on the blocking
//! pool, bounded twice: at most `workers` hashes at once, and at most `queue` more
//! waiting, beyond which callers get `Overloaded` (503 + Retry-After) at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tessera_domain::Error;
use tokio::sync::Semaphore;

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub matches: bool,
    /// The stored hash is not Argon2id with the current parameters.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords off the async runtime.
pub struct PasswordHasher {
    params: Params,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    /// A hash of a random password with the current parameters, verified against when
    /// the account does not exist so that both cases cost the same.
    dummy_hash: String,
    verifications: AtomicU64,
}

impl PasswordHasher {
    /// A hasher with the given Argon2id parameters and pool bounds.
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        workers: usize,
        queue: usize,
    ) -> Result<Self, String> {
        let params =
            Params::new(memory_kib, iterations, parallelism, None).map_err(|e| format!("argon2 parameters: {e}"))?;
        let dummy = crate::tokens::random_token(24);
        let dummy_hash = hash_blocking(&params, &dummy).map_err(|e| format!("argon2: {e}"))?;
        Ok(Self {
            params,
            workers: Arc::new(Semaphore::new(workers.max(1))),
            admission: Arc::new(Semaphore::new(workers.max(1) + queue)),
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let _admitted =
            self.admission.clone().try_acquire_owned().map_err(|_| Error::Overloaded { retry_after_secs: 1 })?;
        let _worker = self.workers.clone().acquire_owned().await.map_err(|e| Error::Internal(e.to_string()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(job))
            .await
            .map_err(|e| Error::Internal(format!("hash task: {e}")))
    }

    /// Hashes a password with Argon2id and the current parameters (PHC string).
    pub async fn hash(&self, password: &SecretString) -> Result<String, Error> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || hash_blocking(&params, password.expose_secret()))
            .await?
            .map_err(|e| Error::Internal(format!("argon2: {e}")))
    }

    /// Checks a password against a stored hash, or against the dummy hash when there
    /// is none, so an unknown account costs what a known one does.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<Verdict, Error> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let params = self.params.clone();
        let verifications = &self.verifications;
        let verdict =
            self.run(move || verify_blocking(&params, password.expose_secret(), &stored)).await.inspect(|_| {
                verifications.fetch_add(1, Ordering::Relaxed);
            })?;
        Ok(Verdict { matches: known && verdict.matches, needs_rehash: verdict.needs_rehash })
    }
}

impl PasswordHasher {
    /// How many password verifications have been computed (known or dummy).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The dummy hash's PHC string (for tests: it must use the current parameters).
    pub fn dummy_hash(&self) -> &str {
        &self.dummy_hash
    }
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

fn verify_blocking(current: &Params, password: &str, stored: &str) -> Verdict {
    if stored.starts_with("$2a$")
        || stored.starts_with("$2b$")
        || stored.starts_with("$2y$")
        || stored.starts_with("$2x$")
    {
        let matches = bcrypt::verify(password, stored).unwrap_or(false);
        return Verdict { matches, needs_rehash: true };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict { matches: false, needs_rehash: true };
    };
    // The verifier takes algorithm, version and parameters from the stored hash.
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    let same_params = Params::try_from(&parsed)
        .map(|p| p.m_cost() == current.m_cost() && p.t_cost() == current.t_cost() && p.p_cost() == current.p_cost())
        .unwrap_or(false);
    let needs_rehash = parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) || !same_params;
    Verdict { matches, needs_rehash }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_detect_old_parameters() {
        let h = PasswordHasher::new(1024, 1, 1, 2, 4).unwrap();
        let pw = SecretString::from("Corr3ct-Horse!");
        let hash = h.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(h.verify(&pw, Some(&hash)).await.unwrap(), Verdict { matches: true, needs_rehash: false });
        let wrong = SecretString::from("nope");
        assert!(!h.verify(&wrong, Some(&hash)).await.unwrap().matches);
        assert!(!h.verify(&pw, None).await.unwrap().matches);
        let other = PasswordHasher::new(2048, 1, 1, 2, 4).unwrap();
        assert_eq!(other.verify(&pw, Some(&hash)).await.unwrap(), Verdict { matches: true, needs_rehash: true });
        assert!(!h.verify(&pw, Some("garbage")).await.unwrap().matches);
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let h = PasswordHasher::new(19456, 2, 1, 1, 1).unwrap();
        assert!(h.dummy_hash().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", h.dummy_hash());
    }

    #[tokio::test]
    async fn full_queue_answers_overloaded() {
        let h = Arc::new(PasswordHasher::new(8192, 3, 1, 1, 0).unwrap());
        let pw = SecretString::from("Corr3ct-Horse!");
        let (a, b) = tokio::join!(h.hash(&pw), h.hash(&pw));
        let overloaded = [&a, &b].iter().filter(|r| matches!(r, Err(Error::Overloaded { .. }))).count();
        assert_eq!(overloaded, 1);
    }
}
