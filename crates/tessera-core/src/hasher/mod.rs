//! Password hashing (SPEC §5.1): Argon2id for new hashes; bcrypt, Argon2 hashes with
//! other parameters and the formats users are imported with ([`imported`], SPEC §5.15)
//! verified and flagged for re-hashing. Work runs on threads of its
//! own, bounded twice: `workers` threads hash at once, and at most `queue` more jobs
//! wait, beyond which callers get `Overloaded` (503 + Retry-After) at once.
//!
//! Each worker keeps its Argon2 memory (19 MiB at the default parameters) between jobs
//! and lets it go after [`KEEP_MEMORY_FOR`] without work: a fresh block per hash costs
//! ~4,900 page faults, the kernel's zeroing of every page, the crate's own zeroing, and
//! an `munmap` whose TLB shootdown interrupts the other cores.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tessera_domain::{normalize_password, Error};
use tokio::sync::{oneshot, Semaphore};

pub mod imported;

/// How long an idle worker keeps its Argon2 memory.
pub const KEEP_MEMORY_FOR: Duration = Duration::from_secs(1);

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub matches: bool,
    /// The stored hash is not Argon2id with the current parameters.
    pub needs_rehash: bool,
}

/// A job for a worker: it gets the worker's memory for the current parameters.
type Job = Box<dyn FnOnce(&mut Memory<'_>) + Send>;

/// The jobs waiting for a worker.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// Bytes of Argon2 memory the workers hold right now.
    held: AtomicUsize,
}

struct QueueState {
    jobs: VecDeque<Job>,
    /// Set when the hasher is dropped: workers finish what is queued, then exit.
    closed: bool,
}

/// Hashes and verifies passwords off the async runtime.
pub struct PasswordHasher {
    params: Params,
    queue: Arc<Queue>,
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
        let dummy = crate::crypto::random_token(24);
        let scratch = AtomicUsize::new(0);
        let dummy_hash = hash_with(&params, &dummy, &mut Memory::new(&scratch)).map_err(|e| format!("argon2: {e}"))?;
        let jobs = Arc::new(Queue {
            state: Mutex::new(QueueState { jobs: VecDeque::new(), closed: false }),
            ready: Condvar::new(),
            held: AtomicUsize::new(0),
        });
        for n in 0..workers.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("tessera-hash-{n}"))
                .spawn(move || work(&jobs))
                .map_err(|e| format!("cannot start a hashing thread: {e}"))?;
        }
        Ok(Self {
            params,
            queue: jobs,
            admission: Arc::new(Semaphore::new(workers.max(1) + queue)),
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    /// Runs `job` on a worker, inside the caller's span; `Overloaded` at once when the
    /// workers and the queue are full.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Memory<'_>) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _admitted =
            self.admission.clone().try_acquire_owned().map_err(|_| Error::Overloaded { retry_after_secs: 1 })?;
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let queued = std::time::Instant::now();
        let job: Job = Box::new(move |memory| {
            metrics::histogram!("tessera_hash_wait_seconds").record(queued.elapsed().as_secs_f64());
            let _ = reply.send(span.in_scope(|| job(memory)));
        });
        {
            let mut state = self.queue.state.lock().map_err(|_| Error::Internal("hash queue poisoned".to_owned()))?;
            state.jobs.push_back(job);
        }
        self.queue.ready.notify_one();
        answer.await.map_err(|_| Error::Internal("hash job lost".to_owned()))
    }

    /// Hash jobs waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.queue.state.lock().map(|s| s.jobs.len()).unwrap_or(0)
    }

    /// Hashes a password, normalised (NFKC), with Argon2id and the current parameters
    /// (PHC string).
    pub async fn hash(&self, password: &SecretString) -> Result<String, Error> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move |memory| hash_with(&params, &normalize_password(password.expose_secret()), memory))
            .await?
            .map_err(|e| Error::Internal(format!("argon2: {e}")))
    }

    /// Checks a password against a stored hash, or against the dummy hash when there
    /// is none, so an unknown account costs what a known one does.
    ///
    /// The normalised (NFKC) password is checked first. A hash made before passwords
    /// were normalised holds the raw form: when the normalised form differs and fails,
    /// the raw form is tried once, and a match asks for a re-hash (of the normalised
    /// form). Unknown accounts take the same second step.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<Verdict, Error> {
        // An account without a password (signed up through a provider, anonymous) costs
        // the same hash as an unknown one, and never matches.
        let stored = stored.filter(|s| !s.is_empty());
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let params = self.params.clone();
        let verifications = &self.verifications;
        let verdict = self
            .run(move |memory| {
                let raw = password.expose_secret();
                let normal = normalize_password(raw);
                let verdict = verify_with(&params, &normal, &stored, memory);
                if verdict.matches || normal == raw {
                    return verdict;
                }
                let verdict = verify_with(&params, raw, &stored, memory);
                Verdict { matches: verdict.matches, needs_rehash: verdict.needs_rehash || verdict.matches }
            })
            .await
            .inspect(|_| {
                verifications.fetch_add(1, Ordering::Relaxed);
            })?;
        Ok(Verdict { matches: known && verdict.matches, needs_rehash: verdict.needs_rehash })
    }
}

impl Drop for PasswordHasher {
    fn drop(&mut self) {
        if let Ok(mut state) = self.queue.state.lock() {
            state.closed = true;
        }
        self.queue.ready.notify_all();
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

    /// Bytes of Argon2 memory the workers keep right now (0 once they have been idle
    /// for [`KEEP_MEMORY_FOR`]).
    pub fn memory_held(&self) -> usize {
        self.queue.held.load(Ordering::Relaxed)
    }
}

/// A worker's Argon2 memory, allocated on first use and kept while jobs keep coming;
/// `held` counts its bytes from the moment they are allocated until they are let go.
struct Memory<'q> {
    blocks: Option<SystemBlocks>,
    held: &'q AtomicUsize,
}

impl<'q> Memory<'q> {
    fn new(held: &'q AtomicUsize) -> Self {
        Memory { blocks: None, held }
    }

    /// At least `count` blocks: the kept ones when they suffice.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.as_ref().is_none_or(|b| b.len < count) {
            self.release();
            let blocks = SystemBlocks::zeroed(count);
            self.held.fetch_add(blocks.len * Block::SIZE, Ordering::Relaxed);
            self.blocks = Some(blocks);
        }
        match &mut self.blocks {
            Some(blocks) => &mut blocks.as_mut_slice()[..count],
            None => &mut [],
        }
    }

    fn holds(&self) -> bool {
        self.blocks.is_some()
    }

    /// Lets the blocks go.
    fn release(&mut self) {
        if let Some(blocks) = self.blocks.take() {
            self.held.fetch_sub(blocks.len * Block::SIZE, Ordering::Relaxed);
        }
    }
}

/// Argon2 blocks from the system allocator rather than the binary's global one: on glibc
/// a block this large (MiBs) is a mapping of its own, handed back to the kernel the moment
/// it is let go, where a caching allocator would keep the pages of an idle worker (or of
/// the dummy hash made at start-up) resident.
struct SystemBlocks {
    ptr: std::ptr::NonNull<Block>,
    len: usize,
}

// SAFETY: the blocks are owned memory, used by one thread at a time.
unsafe impl Send for SystemBlocks {}

impl SystemBlocks {
    /// `len` zeroed blocks (an all-zero block is a valid `Block`); aborts if the memory
    /// cannot be had, as a `Vec` would.
    fn zeroed(len: usize) -> SystemBlocks {
        use std::alloc::{GlobalAlloc, Layout, System};
        let len = len.max(1);
        let Ok(layout) = Layout::array::<Block>(len) else {
            std::process::abort();
        };
        // SAFETY: the layout's size is not zero (`len` ≥ 1 and a block is 1 KiB).
        let ptr = unsafe { System.alloc_zeroed(layout) }.cast::<Block>();
        match std::ptr::NonNull::new(ptr) {
            Some(ptr) => SystemBlocks { ptr, len },
            None => std::alloc::handle_alloc_error(layout),
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: `ptr` holds `len` initialised (zeroed) blocks, owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SystemBlocks {
    fn drop(&mut self) {
        use std::alloc::{GlobalAlloc, Layout, System};
        if let Ok(layout) = Layout::array::<Block>(self.len) {
            // SAFETY: allocated by `System` with this very layout.
            unsafe { System.dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl Drop for Memory<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// A worker: takes jobs until the hasher is gone; lets its memory go when idle.
fn work(queue: &Queue) {
    let mut memory = Memory::new(&queue.held);
    let Ok(mut state) = queue.state.lock() else { return };
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // A panicking job loses its answer (the caller sees an internal error), not the worker.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
            state = match queue.state.lock() {
                Ok(s) => s,
                Err(_) => return,
            };
            continue;
        }
        if state.closed {
            return;
        }
        let holds_memory = memory.holds();
        let waited = if holds_memory {
            queue.ready.wait_timeout(state, KEEP_MEMORY_FOR).ok().map(|(s, timeout)| (s, timeout.timed_out()))
        } else {
            queue.ready.wait(state).ok().map(|s| (s, false))
        };
        let Some((s, timed_out)) = waited else { return };
        state = s;
        if timed_out && state.jobs.is_empty() {
            memory.release();
        }
    }
}

/// Argon2id with `params` into the worker's memory, as a PHC string.
fn hash_with(params: &Params, password: &str, memory: &mut Memory<'_>) -> Result<String, argon2::password_hash::Error> {
    // 16 bytes from the OS generator: the salt length these hashes have always had.
    let salt = Salt::generate();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut output = [0u8; Output::MAX_LENGTH];
    let output = output.get_mut(..len).ok_or(argon2::password_hash::Error::OutputSize)?;
    let blocks = memory.blocks(params.block_count());
    argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut *output, blocks)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt),
        hash: Some(Output::new(output)?),
    };
    Ok(phc.to_string())
}

/// The costs a stored hash may ask for (SPEC §5.15: imported hashes are verified as they
/// are, so their parameters come from elsewhere): within them a verification takes at most
/// a few seconds and 256 MiB; a hash beyond them is not one this hasher reads.
pub const BCRYPT_MAX_COST: u32 = 16;
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;
pub const ARGON2_MAX_ITERATIONS: u32 = 16;
pub const ARGON2_MAX_LANES: u32 = 16;

/// Whether `stored` names one of bcrypt's variants.
fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"].iter().any(|p| stored.starts_with(p))
}

/// The cost of a well-formed bcrypt hash.
fn bcrypt_cost(stored: &str) -> Option<u32> {
    (stored.len() == 60 && is_bcrypt(stored))
        .then(|| stored.parse::<bcrypt::HashParts>().ok().map(|h| h.get_cost()))
        .flatten()
}

fn argon2_affordable(p: &Params) -> bool {
    p.m_cost() <= ARGON2_MAX_MEMORY_KIB && p.t_cost() <= ARGON2_MAX_ITERATIONS && p.p_cost() <= ARGON2_MAX_LANES
}

/// Whether `stored` is a hash this hasher can verify, within the costs above: Argon2 (PHC),
/// bcrypt, or one of the [`imported`] formats. Checks the form only, computes nothing.
pub fn known_format(stored: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt_cost(stored).is_some_and(|c| (4..=BCRYPT_MAX_COST).contains(&c));
    }
    if imported::parse(stored).is_some() {
        return true;
    }
    PasswordHash::new(stored).is_ok_and(|p| {
        Algorithm::new(p.algorithm.as_str()).is_ok()
            && Params::try_from(&p).is_ok_and(|params| argon2_affordable(&params))
            && p.salt.is_some_and(|salt| salt.len() >= 8)
            && p.hash.is_some()
    })
}

/// The most bytes of a password bcrypt reads.
const BCRYPT_MAX_BYTES: usize = 72;

fn verify_with(current: &Params, password: &str, stored: &str, memory: &mut Memory<'_>) -> Verdict {
    if is_bcrypt(stored) {
        // bcrypt reads 72 bytes at most. A longer password must not sign in by its first
        // 72 bytes alone: such a hash can only have been made from a truncated password,
        // so a password over 72 bytes never matches one (its owner resets it).
        let affordable = bcrypt_cost(stored).is_some_and(|c| c <= BCRYPT_MAX_COST);
        let matches =
            affordable && password.len() <= BCRYPT_MAX_BYTES && bcrypt::verify(password, stored).unwrap_or(false);
        return Verdict { matches, needs_rehash: true };
    }
    if let Some(matches) = imported::verify(password, stored) {
        return Verdict { matches, needs_rehash: true };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict { matches: false, needs_rehash: true };
    };
    let params = Params::try_from(&parsed).ok().filter(argon2_affordable);
    let same_params = params.as_ref().is_some_and(|p| {
        p.m_cost() == current.m_cost() && p.t_cost() == current.t_cost() && p.p_cost() == current.p_cost()
    });
    let matches = params.is_some_and(|params| {
        // Only the current parameters' memory is kept; an old hash of another size
        // borrows a block of its own for this once (it is re-hashed on success).
        let mut other = Memory::new(memory.held);
        let memory = if same_params { memory } else { &mut other };
        argon2_matches(&parsed, params, password, memory)
    });
    let needs_rehash = parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) || !same_params;
    Verdict { matches, needs_rehash }
}

/// Recomputes a stored Argon2 hash with its own algorithm, version, parameters and salt,
/// and compares the outputs in constant time.
fn argon2_matches(stored: &PasswordHash, params: Params, password: &str, memory: &mut Memory<'_>) -> bool {
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (Algorithm::new(stored.algorithm.as_str()), stored.salt.as_ref(), stored.hash.as_ref())
    else {
        return false;
    };
    let Ok(version) = stored.version.map_or(Ok(Version::default()), Version::try_from) else {
        return false;
    };
    let blocks = memory.blocks(params.block_count());
    let argon = Argon2::new(algorithm, version, params);
    let mut computed = vec![0u8; expected.len()];
    argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, blocks).is_ok()
        && bool::from(computed.as_slice().ct_eq(expected.as_bytes()))
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

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = PasswordHasher::new(1024, 2, 1, 1, 0).unwrap();
        let pw = SecretString::from("Corr3ct-Horse!");
        let ours = h.hash(&pw).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"Corr3ct-Horse!", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"Corr3ct-Horse?", &parsed).is_err());
        let params = Params::new(1024, 2, 1, None).unwrap();
        let salt = Salt::generate();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"Corr3ct-Horse!", &salt)
            .unwrap()
            .to_string();
        assert_eq!(h.verify(&pw, Some(&theirs)).await.unwrap(), Verdict { matches: true, needs_rehash: false });
        let wrong = SecretString::from("Corr3ct-Horse?");
        assert!(!h.verify(&wrong, Some(&theirs)).await.unwrap().matches);
        // Argon2i and Argon2d of other sizes verify too, on a block of their own.
        for alg in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let old = Argon2::new(alg, Version::V0x10, Params::new(2048, 1, 2, None).unwrap())
                .hash_password_with_salt(b"Corr3ct-Horse!", &salt)
                .unwrap()
                .to_string();
            assert_eq!(h.verify(&pw, Some(&old)).await.unwrap(), Verdict { matches: true, needs_rehash: true });
            assert!(!h.verify(&wrong, Some(&old)).await.unwrap().matches);
        }
    }

    #[tokio::test]
    async fn passwords_are_normalised_and_old_raw_hashes_still_verify() {
        let h = PasswordHasher::new(1024, 1, 1, 1, 4).unwrap();
        let composed = SecretString::from("Caf\u{e9}-Str0ng!");
        let decomposed = SecretString::from("Cafe\u{301}-Str0ng!");
        let hash = h.hash(&decomposed).await.unwrap();
        assert_eq!(h.verify(&composed, Some(&hash)).await.unwrap(), Verdict { matches: true, needs_rehash: false });
        // A hash of the raw, unnormalised form (made before this change) verifies once
        // and asks for a re-hash.
        let scratch_held = AtomicUsize::new(0);
        let raw = hash_with(&h.params, "\u{ff21}bc-Str0ng!", &mut Memory::new(&scratch_held)).unwrap();
        let fullwidth = SecretString::from("\u{ff21}bc-Str0ng!");
        assert_eq!(h.verify(&fullwidth, Some(&raw)).await.unwrap(), Verdict { matches: true, needs_rehash: true });
        assert!(!h.verify(&SecretString::from("Abc-Str0ng!"), Some(&raw)).await.unwrap().matches);
        let rehashed = h.hash(&fullwidth).await.unwrap();
        assert!(h.verify(&SecretString::from("Abc-Str0ng!"), Some(&rehashed)).await.unwrap().matches);
    }

    #[tokio::test]
    async fn workers_keep_their_memory_only_while_busy() {
        let h = PasswordHasher::new(1024, 1, 1, 2, 4).unwrap();
        assert_eq!(h.memory_held(), 0);
        let pw = SecretString::from("Corr3ct-Horse!");
        let hash = h.hash(&pw).await.unwrap();
        assert!(h.verify(&pw, Some(&hash)).await.unwrap().matches);
        let held = h.memory_held();
        assert!((1024 * 1024..=2 * 1024 * 1024).contains(&held), "{held}");
        tokio::time::sleep(KEEP_MEMORY_FOR * 2 + Duration::from_millis(500)).await;
        assert_eq!(h.memory_held(), 0);
        // ...and take it again for the next job.
        assert!(h.verify(&pw, Some(&hash)).await.unwrap().matches);
        assert!(h.memory_held() >= 1024 * 1024);
    }

    #[tokio::test]
    async fn hashes_that_ask_for_too_much_are_neither_known_nor_computed() {
        let h = PasswordHasher::new(1024, 1, 1, 1, 4).unwrap();
        let pw = SecretString::from("Corr3ct-Horse!");
        let cheap = bcrypt::hash("Corr3ct-Horse!", 4).unwrap();
        assert!(known_format(&cheap));
        // The same hash claiming cost 31 (a day and a half per attempt) or 3.
        for cost in ["31", "17", "03"] {
            let costly = format!("$2b${cost}{}", &cheap[6..]);
            assert!(!known_format(&costly), "{costly}");
            let started = std::time::Instant::now();
            assert!(!h.verify(&pw, Some(&costly)).await.unwrap().matches);
            assert!(started.elapsed() < Duration::from_secs(2), "not computed");
        }
        let salt = "c2FsdHNhbHRzYWx0c2FsdA";
        let out = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for params in ["m=4194304,t=1,p=1", "m=1024,t=100000,p=1", "m=1024,t=1,p=64"] {
            let costly = format!("$argon2id$v=19${params}${salt}${out}");
            assert!(PasswordHash::new(&costly).is_ok(), "{costly}");
            assert!(!known_format(&costly), "{costly}");
            assert!(!h.verify(&pw, Some(&costly)).await.unwrap().matches);
        }
        assert!(known_format(&format!("$argon2id$v=19$m=7168,t=5,p=1${salt}${out}")));
        assert!(!known_format(&format!("$argon2id$v=19$m=7168,t=5,p=1$c2FsdA${out}")), "a salt under 8 bytes");
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
