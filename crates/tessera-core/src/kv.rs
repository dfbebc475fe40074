//! The Kv port: counters for rate limits and lockout state, with each operation atomic.
//! Two implementations: in memory (one node) and Redis (many nodes, one Lua script per
//! operation, so two nodes never both let through what one limit allows). When Redis
//! is configured but unreachable, operations fall back to memory with one warning, and
//! Redis is used again as soon as it answers.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::Mutex as AsyncMutex;

/// One rate-limit window: at most `limit` hits per `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub secs: u64,
}

/// Parses `5/15m,1/1s` (units s, m, h, d).
pub fn parse_windows(spec: &str) -> Result<Vec<Window>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not LIMIT/PERIOD, e.g. 5/15m");
        let (limit, period) = part.split_once('/').ok_or_else(bad)?;
        let limit: u64 = limit.trim().parse().map_err(|_| bad())?;
        let secs = parse_duration(period).ok_or_else(bad)?;
        if limit == 0 || secs == 0 {
            return Err(bad());
        }
        out.push(Window { limit, secs });
    }
    if out.is_empty() {
        return Err("no window given".to_owned());
    }
    Ok(out)
}

/// Parses `15m`, `24h`, `30s`, `1d` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = if num.is_empty() { 1 } else { num.trim().parse().ok()? };
    n.checked_mul(mult)
}

/// The outcome of one rate-limited hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The limit of the window closest to its limit.
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until that window resets.
    pub reset_secs: u64,
    /// When denied: seconds until every exceeded window has reset.
    pub retry_after_secs: u64,
}

fn decide(windows: &[Window], counts: &[(u64, u64)]) -> RateDecision {
    let mut binding = (u64::MAX, 0u64, 0u64); // (remaining, limit, reset)
    let mut retry = 0;
    let mut allowed = true;
    for (w, &(count, ttl)) in windows.iter().zip(counts) {
        let remaining = w.limit.saturating_sub(count);
        if count > w.limit {
            allowed = false;
            retry = retry.max(ttl.max(1));
        }
        if remaining < binding.0 {
            binding = (remaining, w.limit, ttl);
        }
    }
    RateDecision { allowed, limit: binding.1, remaining: binding.0, reset_secs: binding.2, retry_after_secs: retry }
}

/// Lockout policy: after `threshold` consecutive failures, lock for `base` doubling per
/// repeat offence up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub threshold: u64,
    pub base_secs: u64,
    pub max_secs: u64,
}

impl LockoutPolicy {
    fn duration(&self, offence: u64) -> u64 {
        let doublings = offence.saturating_sub(1).min(32) as u32;
        self.base_secs.saturating_mul(1u64 << doublings).min(self.max_secs)
    }

    /// How long failure and offence memories are kept.
    fn memory_secs(&self) -> u64 {
        self.max_secs.max(86_400)
    }
}

/// Whole seconds from `now` until `until`, rounded up, at least 1: what a client must
/// wait.
fn ceil_secs(until: Instant, now: Instant) -> u64 {
    let ms = until.saturating_duration_since(now).as_millis() as u64;
    ms.div_ceil(1000).max(1)
}

#[derive(Debug)]
struct Entry {
    value: u64,
    expires: Instant,
}

/// The in-memory implementation: a bounded map of keys, the least recently used dropped
/// first when it is full, in shards so that requests rarely wait for one another. An
/// operation locks the one shard of its subject (every key it touches shares the
/// subject's prefix), so it stays atomic; nothing ever sweeps the whole map: an expired
/// entry goes when it is next touched, or when the shard needs its room.
pub struct MemoryKv {
    shards: Vec<Mutex<LruCache<String, Entry>>>,
}

/// Shards of the in-memory store: enough that two cores rarely meet on one.
const SHARDS: usize = 16;

impl Default for MemoryKv {
    fn default() -> Self {
        MemoryKv::with_capacity(100_000)
    }
}

impl MemoryKv {
    /// A store holding at most `keys` keys (at least one a shard).
    pub fn with_capacity(keys: usize) -> MemoryKv {
        let shard = |i: usize| {
            let room = keys / SHARDS + usize::from(i < keys % SHARDS);
            Mutex::new(LruCache::new(NonZeroUsize::new(room).unwrap_or(NonZeroUsize::MIN)))
        };
        MemoryKv { shards: (0..SHARDS).map(shard).collect() }
    }

    /// How many keys are held (expired ones included until they go).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<T>(&self, subject: &str, f: impl FnOnce(&mut LruCache<String, Entry>, Instant) -> T) -> T {
        use std::hash::BuildHasher;
        static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
        let shard = &self.shards[(SEED.get_or_init(Default::default).hash_one(subject) % SHARDS as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map, Instant::now())
    }

    fn live(map: &mut LruCache<String, Entry>, key: &str, now: Instant) -> Option<(u64, u64)> {
        match map.get(key) {
            Some(e) if e.expires > now => Some((e.value, ceil_secs(e.expires, now))),
            Some(_) => {
                map.pop(key);
                None
            }
            None => None,
        }
    }

    fn incr(map: &mut LruCache<String, Entry>, key: &str, ttl: u64, now: Instant, refresh_ttl: bool) -> (u64, u64) {
        let fresh = || Entry { value: 0, expires: now + Duration::from_secs(ttl) };
        let e = match map.get_mut(key) {
            Some(e) if e.expires > now => e,
            Some(e) => {
                *e = fresh();
                e
            }
            None => {
                map.put(key.to_owned(), fresh());
                match map.get_mut(key) {
                    Some(e) => e,
                    None => return (1, ttl.max(1)),
                }
            }
        };
        e.value += 1;
        if refresh_ttl {
            e.expires = now + Duration::from_secs(ttl);
        }
        (e.value, ceil_secs(e.expires, now))
    }

    fn rate_hit(&self, key: &str, windows: &[Window]) -> RateDecision {
        self.with(key, |map, now| {
            let counts: Vec<(u64, u64)> =
                windows.iter().map(|w| Self::incr(map, &format!("{key}:{}", w.secs), w.secs, now, false)).collect();
            decide(windows, &counts)
        })
    }

    fn lock_reserve(&self, key: &str, p: &LockoutPolicy) -> Option<u64> {
        self.with(key, |map, now| {
            if let Some((_, ttl)) = Self::live(map, &format!("{key}:lock"), now) {
                return Some(ttl);
            }
            let (n, _) = Self::incr(map, &format!("{key}:fails"), p.memory_secs(), now, true);
            (n > p.threshold).then_some(p.base_secs)
        })
    }

    fn lock_release(&self, key: &str) {
        self.with(key, |map, now| {
            let fails = format!("{key}:fails");
            match Self::live(map, &fails, now) {
                Some((n, _)) if n > 1 => {
                    if let Some(e) = map.get_mut(&fails) {
                        e.value -= 1;
                    }
                }
                Some(_) => {
                    map.pop(&fails);
                }
                None => {}
            }
        })
    }

    fn lock_fail(&self, key: &str, p: &LockoutPolicy) -> Option<u64> {
        self.with(key, |map, now| {
            if Self::live(map, &format!("{key}:lock"), now).is_some() {
                return None;
            }
            let fails = Self::live(map, &format!("{key}:fails"), now).map_or(0, |(v, _)| v);
            if fails < p.threshold {
                return None;
            }
            let (offence, _) = Self::incr(map, &format!("{key}:offences"), p.memory_secs(), now, true);
            let secs = p.duration(offence);
            map.put(format!("{key}:lock"), Entry { value: 1, expires: now + Duration::from_secs(secs) });
            map.pop(&format!("{key}:fails"));
            Some(secs)
        })
    }

    fn lock_clear(&self, key: &str) {
        self.with(key, |map, _| map.pop(&format!("{key}:fails")));
    }
}

const RATE_SCRIPT: &str = r"
local out = {}
for i, k in ipairs(KEYS) do
  local n = redis.call('INCR', k)
  if n == 1 then redis.call('EXPIRE', k, tonumber(ARGV[i])) end
  local ttl = redis.call('TTL', k)
  if ttl < 0 then redis.call('EXPIRE', k, tonumber(ARGV[i])); ttl = tonumber(ARGV[i]) end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
";

// KEYS: lock, fails. ARGV: threshold, memory. Returns 0 (go on), a positive TTL (locked),
// or -1 (too many attempts already under way: they will lock it).
const LOCK_RESERVE_SCRIPT: &str = r"
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then return ttl end
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
if n > tonumber(ARGV[1]) then return -1 end
return 0
";

// KEYS: lock, fails, offences. ARGV: threshold, base, max, memory. Returns the lock
// duration set now, or 0.
const LOCK_FAIL_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n < tonumber(ARGV[1]) then return 0 end
local o = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
if o > 33 then o = 33 end
local d = tonumber(ARGV[2]) * math.pow(2, o - 1)
if d > tonumber(ARGV[3]) then d = tonumber(ARGV[3]) end
d = math.floor(d)
redis.call('SET', KEYS[1], '1', 'EX', d)
redis.call('DEL', KEYS[2])
return d
";

// KEYS: fails. Gives back a reservation made by LOCK_RESERVE_SCRIPT.
const LOCK_RELEASE_SCRIPT: &str = r"
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
";

const OP_TIMEOUT: Duration = Duration::from_millis(500);

/// The Redis implementation, connected lazily and reconnected after an outage.
struct RedisKv {
    client: redis::Client,
    conn: AsyncMutex<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
    rate: Script,
    reserve: Script,
    fail: Script,
    release: Script,
}

impl RedisKv {
    async fn connection(&self) -> Result<ConnectionManager, String> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        {
            // While Redis is down, try to connect at most once every 2 seconds.
            let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
                return Err("redis unreachable (waiting to retry)".to_owned());
            }
            *last = Some(Instant::now());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1);
        let manager = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| "redis connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        *guard = Some(manager.clone());
        Ok(manager)
    }

    async fn run<T: redis::FromRedisValue>(&self, invocation: redis::ScriptInvocation<'_>) -> Result<T, String> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(OP_TIMEOUT, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| "redis timed out".to_owned())?
            .map_err(|e| e.to_string())
    }

    async fn ping(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let mut conn = self.connection().await?;
        let pong: String = tokio::time::timeout(OP_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
            .await
            .map_err(|_| "redis timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if pong == "PONG" {
            Ok(started.elapsed())
        } else {
            Err(format!("unexpected PING answer {pong}"))
        }
    }
}

/// The Kv port: Redis when configured and reachable, memory otherwise.
pub struct Kv {
    memory: MemoryKv,
    redis: Option<RedisKv>,
    degraded: AtomicBool,
}

impl Kv {
    /// A Kv in memory only, holding at most about `keys` keys.
    pub fn memory(keys: usize) -> Kv {
        Kv { memory: MemoryKv::with_capacity(keys), redis: None, degraded: AtomicBool::new(false) }
    }

    /// A Kv backed by Redis at `url` (connected on first use), and by memory (at most
    /// about `keys` keys) while Redis is down.
    pub fn redis(url: &str, keys: usize) -> Result<Kv, String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        Ok(Kv {
            memory: MemoryKv::with_capacity(keys),
            redis: Some(RedisKv {
                client,
                conn: AsyncMutex::new(None),
                last_attempt: Mutex::new(None),
                rate: Script::new(RATE_SCRIPT),
                reserve: Script::new(LOCK_RESERVE_SCRIPT),
                fail: Script::new(LOCK_FAIL_SCRIPT),
                release: Script::new(LOCK_RELEASE_SCRIPT),
            }),
            degraded: AtomicBool::new(false),
        })
    }

    /// How many keys the in-memory store holds now.
    pub fn memory_keys(&self) -> usize {
        self.memory.len()
    }

    /// Whether Redis is configured.
    pub fn has_redis(&self) -> bool {
        self.redis.is_some()
    }

    fn redis_failed(&self, e: &str) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "redis unavailable: rate limits and lockout fall back to this node's memory");
        }
    }

    fn redis_ok(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("redis reachable again: rate limits and lockout are shared across nodes again");
        }
    }

    /// Counts one hit on `key` in every window and decides.
    pub async fn rate_hit(&self, key: &str, windows: &[Window]) -> RateDecision {
        if let Some(r) = &self.redis {
            let mut inv = r.rate.prepare_invoke();
            for w in windows {
                inv.key(format!("tessera:rl:{key}:{}", w.secs)).arg(w.secs);
            }
            match r.run::<Vec<i64>>(inv).await {
                Ok(v) if v.len() == windows.len() * 2 => {
                    self.redis_ok();
                    let counts: Vec<(u64, u64)> =
                        v.chunks(2).map(|c| (c[0].max(0) as u64, c[1].max(1) as u64)).collect();
                    return decide(windows, &counts);
                }
                Ok(v) => self.redis_failed(&format!("unexpected rate answer {v:?}")),
                Err(e) => self.redis_failed(&e),
            }
        }
        self.memory.rate_hit(key, windows)
    }

    /// Reserves one sign-in attempt for `key`: `Some(secs)` when it is locked (or
    /// enough attempts are already under way to lock it), `None` to go on.
    pub async fn lock_reserve(&self, key: &str, p: &LockoutPolicy) -> Option<u64> {
        if let Some(r) = &self.redis {
            let mut inv = r.reserve.prepare_invoke();
            inv.key(format!("tessera:lock:{key}"))
                .key(format!("tessera:fails:{key}"))
                .arg(p.threshold)
                .arg(p.memory_secs());
            match r.run::<i64>(inv).await {
                Ok(v) => {
                    self.redis_ok();
                    return match v {
                        0 => None,
                        v if v > 0 => Some(v as u64),
                        _ => Some(p.base_secs),
                    };
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        self.memory.lock_reserve(key, p)
    }

    /// Records a failed attempt; returns the lock duration if this failure locked `key`.
    pub async fn lock_fail(&self, key: &str, p: &LockoutPolicy) -> Option<u64> {
        if let Some(r) = &self.redis {
            let mut inv = r.fail.prepare_invoke();
            inv.key(format!("tessera:lock:{key}"))
                .key(format!("tessera:fails:{key}"))
                .key(format!("tessera:offences:{key}"))
                .arg(p.threshold)
                .arg(p.base_secs)
                .arg(p.max_secs)
                .arg(p.memory_secs());
            match r.run::<i64>(inv).await {
                Ok(v) => {
                    self.redis_ok();
                    return (v > 0).then_some(v as u64);
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        self.memory.lock_fail(key, p)
    }

    /// Gives back a reservation of [`Kv::lock_reserve`] for an attempt that was refused
    /// before any work (the hashing pool was full): it counts for nothing.
    pub async fn lock_release(&self, key: &str) {
        if let Some(r) = &self.redis {
            let mut inv = r.release.prepare_invoke();
            inv.key(format!("tessera:fails:{key}"));
            match r.run::<i64>(inv).await {
                Ok(_) => {
                    self.redis_ok();
                    return;
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        self.memory.lock_release(key);
    }

    /// Forgets the failures of `key` (a successful sign-in).
    pub async fn lock_clear(&self, key: &str) {
        if let Some(r) = &self.redis {
            let result = match r.connection().await {
                Ok(mut conn) => tokio::time::timeout(
                    OP_TIMEOUT,
                    redis::cmd("DEL").arg(format!("tessera:fails:{key}")).query_async::<i64>(&mut conn),
                )
                .await
                .map_err(|_| "redis timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => self.redis_ok(),
                Err(e) => self.redis_failed(&e),
            }
        }
        self.memory.lock_clear(key);
    }

    /// Redis health: `None` when not configured, else the PING round trip or the error.
    pub async fn redis_health(&self) -> Option<Result<Duration, String>> {
        let r = self.redis.as_ref()?;
        let result = r.ping().await;
        match &result {
            Ok(_) => self.redis_ok(),
            Err(e) => self.redis_failed(e),
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_windows_and_durations() {
        assert_eq!(
            parse_windows("5/15m, 1/1s").unwrap(),
            vec![Window { limit: 5, secs: 900 }, Window { limit: 1, secs: 1 }]
        );
        assert_eq!(parse_windows("3/1h").unwrap(), vec![Window { limit: 3, secs: 3600 }]);
        assert_eq!(parse_windows("10/1d").unwrap(), vec![Window { limit: 10, secs: 86_400 }]);
        for bad in ["", "5", "x/1m", "5/xm", "0/1m", "5/0s"] {
            assert!(parse_windows(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("90"), Some(90));
    }

    #[test]
    fn memory_rate_limit_counts_every_window() {
        let kv = MemoryKv::default();
        let w = [Window { limit: 3, secs: 60 }, Window { limit: 2, secs: 1 }];
        let a = kv.rate_hit("k", &w);
        assert!(a.allowed);
        assert_eq!((a.limit, a.remaining), (2, 1));
        assert!(kv.rate_hit("k", &w).allowed);
        let c = kv.rate_hit("k", &w);
        assert!(!c.allowed);
        assert!(c.retry_after_secs >= 1);
        assert!(kv.rate_hit("other", &w).allowed);
    }

    #[test]
    fn memory_lockout_doubles_and_caps() {
        let kv = MemoryKv::default();
        let p = LockoutPolicy { threshold: 2, base_secs: 10, max_secs: 25 };
        for expected in [10, 20, 25, 25] {
            assert_eq!(kv.lock_reserve("e", &p), None);
            assert_eq!(kv.lock_fail("e", &p), None);
            assert_eq!(kv.lock_reserve("e", &p), None);
            assert_eq!(kv.lock_fail("e", &p), Some(expected));
            assert!(kv.lock_reserve("e", &p).is_some(), "locked");
            // Unlock by hand to reach the next offence.
            kv.with("e", |m, _| m.pop("e:lock"));
        }
    }

    #[test]
    fn memory_lockout_reservations_cap_concurrent_attempts() {
        let kv = MemoryKv::default();
        let p = LockoutPolicy { threshold: 5, base_secs: 900, max_secs: 86_400 };
        let admitted = (0..30).filter(|_| kv.lock_reserve("e", &p).is_none()).count();
        assert_eq!(admitted, 5);
        kv.lock_clear("e");
        assert_eq!(kv.lock_reserve("e", &p), None, "success resets the count");
    }

    #[test]
    fn memory_holds_at_most_its_capacity_dropping_the_least_recently_used() {
        let kv = MemoryKv::with_capacity(64);
        let w = [Window { limit: 3, secs: 3600 }];
        kv.rate_hit("kept", &w);
        for i in 0..10_000 {
            kv.rate_hit(&format!("k{i}"), &w);
            kv.rate_hit("kept", &w); // recently used, so it stays
        }
        assert!(kv.len() <= 64, "{} keys", kv.len());
        assert!(!kv.rate_hit("kept", &w).allowed, "the key in use kept its count");
        kv.lock_reserve("e", &LockoutPolicy { threshold: 5, base_secs: 60, max_secs: 600 });
        kv.lock_release("e");
        assert!(kv.with("e", |map, _| map.peek("e:fails").is_none()), "a released reservation leaves no key");
    }
}
