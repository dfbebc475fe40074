//! Micro-benchmarks of the crypto on tessera's hot paths, with the server's default
//! parameters: Argon2id hash and verify, access-token sign and verify, refresh-token
//! sealing and opening. `cargo bench -p tessera-core`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use criterion::{criterion_group, criterion_main, Criterion};
use secrecy::SecretString;
use tessera_core::hasher::PasswordHasher;
use tessera_core::session::tokens::{AccessClaims, JwtKeys, RefreshKeys};
use tessera_core::settings::Settings;
use uuid::Uuid;

fn settings() -> Settings {
    let mut s = Settings::from_vars(&HashMap::new()).unwrap();
    s.jwt_secret = Some(SecretString::from("a-benchmark-secret-of-at-least-32-bytes!"));
    s
}

fn passwords(c: &mut Criterion) {
    let s = settings();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let hasher = PasswordHasher::new(s.argon2_memory_kib, s.argon2_iterations, s.argon2_parallelism, 1, 0).unwrap();
    let password = SecretString::from("Bench-Passw0rd!x");
    let hash = rt.block_on(hasher.hash(&password)).unwrap();
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(20);
    g.bench_function("hash", |b| b.iter(|| rt.block_on(hasher.hash(&password)).unwrap()));
    g.bench_function("verify", |b| b.iter(|| rt.block_on(hasher.verify(&password, Some(&hash))).unwrap()));
    g.finish();
}

fn access_tokens(c: &mut Criterion) {
    let s = settings();
    let keys = JwtKeys::from_settings(&s).unwrap();
    let now = chrono::Utc::now().timestamp();
    let id = Uuid::now_v7().to_string();
    let claims = AccessClaims {
        iss: keys.issuer.clone(),
        aud: keys.audience.clone(),
        sub: id.clone(),
        user_id: id,
        email: "ada@example.com".to_owned(),
        role: "user".to_owned(),
        typ: "access".to_owned(),
        ver: 0,
        sid: Uuid::now_v7(),
        aal: "aal1".to_owned(),
        iat: now,
        exp: now + 900,
        jti: Uuid::now_v7().to_string(),
    };
    let token = keys.sign(&claims).unwrap();
    let mut g = c.benchmark_group("jwt_hs256");
    g.bench_function("sign", |b| b.iter(|| keys.sign(&claims).unwrap()));
    g.bench_function("verify", |b| b.iter(|| keys.verify(&token).unwrap()));
    g.finish();
}

fn refresh_tokens(c: &mut Criterion) {
    let keys = RefreshKeys::new(&[b"a-benchmark-refresh-secret-of-32-bytes!".as_slice()]);
    let session = Uuid::now_v7();
    let token = keys.seal(session, 42);
    let mut g = c.benchmark_group("refresh_token");
    g.bench_function("seal", |b| b.iter(|| keys.seal(session, 42)));
    g.bench_function("open", |b| b.iter(|| keys.open(&token).unwrap()));
    g.finish();
}

criterion_group!(benches, passwords, access_tokens, refresh_tokens);
criterion_main!(benches);
