//! Benchmark data (`tessera admin seed-users`): many plausible users inserted in bulk,
//! all sharing one password hash computed once, so that the admin list, search and
//! analytics can be measured on a realistic table.

use chrono::Duration as ChronoDuration;
use secrecy::SecretString;
use serde_json::json;
use tessera_domain::Error;
use tessera_store::entity::{profile, user};
use tessera_store::query::seed;
use uuid::Uuid;

use crate::app::Core;
use crate::caller::now;

/// The password of every seeded user.
pub const SEED_PASSWORD: &str = "Seed!Passw0rd-bench";

const FIRST: [&str; 20] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Linus",
    "Hedy",
    "John",
    "Katherine",
    "Tim",
    "Sophie",
    "Niklaus",
    "Shafi",
    "Leslie",
];
const LAST: [&str; 25] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Lamarr",
    "Backus",
    "Johnson",
    "Berners-Lee",
    "Wilson",
    "Wirth",
    "Goldwasser",
    "Lamport",
    "Kay",
    "Cerf",
    "Kahn",
    "McCarthy",
    "Shannon",
];

/// What to seed.
pub struct SeedPlan {
    pub count: u64,
    /// Emails are `{prefix}{n}@seed.example`.
    pub prefix: String,
    /// Sign-ups are spread evenly over this many days before now.
    pub days: u32,
    /// Rows per INSERT statement.
    pub batch: u64,
}

impl Core {
    /// Inserts `plan.count` users and their profiles in multi-row INSERTs, one
    /// transaction per batch: 80 % verified, 3 % deactivated, 1 % soft-deleted, all
    /// with [`SEED_PASSWORD`]. Then refreshes the planner statistics. `progress` is
    /// called after each batch with the number inserted so far.
    pub async fn seed_users(&self, plan: &SeedPlan, mut progress: impl FnMut(u64)) -> Result<u64, Error> {
        let hash = self.hasher.hash(&SecretString::from(SEED_PASSWORD)).await?;
        let now = now();
        let span_secs = i64::from(plan.days.max(1)) * 86_400;
        let batch = plan.batch.clamp(1, 2000);
        let mut done = 0u64;
        while done < plan.count {
            let n = batch.min(plan.count - done);
            let mut users = Vec::with_capacity(n as usize);
            let mut profiles = Vec::with_capacity(n as usize);
            for i in done..done + n {
                // Oldest first, evenly spread up to now.
                let age = span_secs - (span_secs * (i as i64 + 1)) / plan.count.max(1) as i64;
                let created = now - ChronoDuration::seconds(age);
                let id = Uuid::now_v7();
                let name = format!("{} {}", FIRST[(i % 20) as usize], LAST[((i / 20) % 25) as usize]);
                users.push(user::Model {
                    id,
                    email: format!("{}{i}@seed.example", plan.prefix),
                    password_hash: hash.clone(),
                    full_name: Some(name),
                    phone: None,
                    email_verified_at: (i % 5 != 0).then_some(created),
                    phone_verified_at: None,
                    is_active: i % 33 != 0,
                    role: "user".to_owned(),
                    token_version: 0,
                    last_login_at: None,
                    created_at: created,
                    updated_at: created,
                    deleted_at: (i % 100 == 7).then(|| created + ChronoDuration::days(1)).filter(|d| *d < now),
                    new_email: None,
                    mfa_enabled: false,
                    email_index: None,
                    new_email_index: None,
                    is_anonymous: false,
                    has_identities: false,
                    phone_index: None,
                });
                profiles.push(profile::Model {
                    id: Uuid::now_v7(),
                    user_id: id,
                    avatar_url: None,
                    location: None,
                    date_of_birth: None,
                    bio: None,
                    preferences: json!({}),
                    created_at: created,
                    updated_at: created,
                    user_metadata: json!({}),
                    app_metadata: json!({}),
                    invited_at: None,
                });
            }
            let tx = self.store.begin().await?;
            seed::insert_users(&tx, users, profiles).await?;
            tx.commit().await?;
            done += n;
            progress(done);
        }
        seed::refresh_statistics(self.store.reader()).await?;
        Ok(done)
    }
}
