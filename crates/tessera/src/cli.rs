//! The command line: `serve` (the default), `migrate`, `admin`, `config`, `openapi`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tessera_core::settings::Settings;

/// tessera: a self-hosted authentication and user-management server.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply, roll back or list migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Check or document the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Run the purge once, now: accounts past DELETED_RETENTION_DAYS, expired sessions
    /// and tokens, mail sent over a day ago. Prints what it removed.
    Purge,
    /// Encrypt or re-encrypt stored email addresses and phone numbers under the first key
    /// of PII_ENCRYPTION_KEY, online, in batches; a stopped run resumes where it was.
    Pii {
        #[command(subcommand)]
        action: PiiAction,
    },
    /// Project keys: `tessera keys supabase` prints the `anon` and `service_role` keys a
    /// Supabase client is configured with, signed with the server's JWT key.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Bring the users of another system: Supabase, Auth0, Firebase, Keycloak or a CSV
    /// file. Idempotent, resumable after a stop, batched; see docs/import.md.
    Import(ImportArgs),
    /// Administration chores: create an admin, seed benchmark users.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// `tessera import`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The system the users come from.
    #[arg(long = "from", value_enum)]
    pub from: ImportSource,
    /// The export: Supabase `auth.users` (CSV or JSON), Auth0's bulk export (NDJSON),
    /// `firebase auth:export` JSON, a Keycloak realm export, or tessera's CSV.
    pub file: Option<std::path::PathBuf>,
    /// Supabase: read `auth.users`, `auth.identities` and `auth.mfa_factors` straight
    /// from the project's database (read-only, one snapshot), instead of a file. Better
    /// given as IMPORT_DATABASE_URL, which `ps` and the shell's history do not show.
    #[arg(long, env = "IMPORT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Supabase: an export of `auth.identities` (CSV or JSON).
    #[arg(long)]
    pub identities: Option<std::path::PathBuf>,
    /// Supabase: an export of `auth.mfa_factors` (CSV or JSON).
    #[arg(long)]
    pub factors: Option<std::path::PathBuf>,
    /// Auth0: the password-hash export (NDJSON) from Auth0's support.
    #[arg(long)]
    pub hashes: Option<std::path::PathBuf>,
    /// Firebase: the project's password hash parameters (the console's `hash_config`).
    #[arg(long)]
    pub hash_config: Option<std::path::PathBuf>,
    /// A user already here (same id, or else same address): `skip` or `update`.
    #[arg(long, value_enum, default_value = "skip")]
    pub on_conflict: ImportConflict,
    /// Check every row and report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the report (every refused and skipped row, and why) as JSON to this file.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Users per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

/// Where users come from.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ImportSource {
    Supabase,
    Auth0,
    Firebase,
    Keycloak,
    Csv,
}

/// What to do with a user who is already here.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ImportConflict {
    Skip,
    Update,
}

/// Administration actions.
#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// Create a user (an admin by default), reading the password from standard input.
    Create {
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (never an argument,
        /// which would show in `ps` and shell history).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// `admin` (default) or `user`.
        #[arg(long, default_value = "admin")]
        role: String,
        /// The account's full name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Insert many users quickly for benchmarking (one fixed password hash, multi-row
    /// INSERTs). Their password is `Seed!Passw0rd-bench`.
    SeedUsers {
        /// How many users.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Emails are PREFIX<n>@seed.example.
        #[arg(long, default_value = "seed")]
        prefix: String,
        /// Spread the sign-ups over this many days before now.
        #[arg(long, default_value_t = 730)]
        days: u32,
        /// Rows per INSERT.
        #[arg(long, default_value_t = 1000)]
        batch: u64,
    },
}

/// Key actions.
#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Print `anon=…` and `service_role=…`: JWTs with those roles, valid ten years, signed
    /// with JWT_PRIVATE_KEY (or JWT_SECRET_KEY with an HS algorithm).
    Supabase,
}

/// PII encryption actions.
#[derive(Subcommand, Debug)]
pub enum PiiAction {
    /// Encrypt every address and phone number still stored in plaintext (after turning
    /// PII_ENCRYPTION_KEY on and restarting every node with it).
    Encrypt,
    /// Re-encrypt everything under the first key of the ring (after putting a new key
    /// first and restarting every node); then the older keys may be dropped.
    Rotate,
}

/// Migration actions.
#[derive(Subcommand, Debug)]
pub enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// Roll back the newest migration.
    Down,
    /// List migrations and whether each is applied.
    Status,
}

/// Configuration actions.
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the configuration as start-up would; exits non-zero on any problem.
    Check,
    /// Print every setting with its default and meaning.
    Docs,
}

fn load_settings() -> Result<Settings, ExitCode> {
    Settings::from_process_env().map_err(|problems| {
        for p in problems {
            eprintln!("configuration error: {p}");
        }
        ExitCode::from(2)
    })
}

/// The OpenAPI document for the password policy of this environment's settings.
fn openapi_document() -> Result<serde_json::Value, String> {
    let settings = Settings::from_process_env().map_err(|problems| problems.join("\n"))?;
    Ok(tessera_http::openapi::document_today(&settings.password_policy))
}

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate { action } => migrate(action.unwrap_or(MigrateAction::Up)).await,
        Command::Config { action: ConfigAction::Docs } => {
            print!("{}", config_docs());
            ExitCode::SUCCESS
        }
        Command::Config { action: ConfigAction::Check } => config_check().await,
        Command::Admin { action } => admin(action).await,
        Command::Purge => purge().await,
        Command::Keys { action: KeysAction::Supabase } => supabase_keys().await,
        Command::Pii { action } => pii(action).await,
        Command::Import(args) => import(args).await,
        Command::Openapi => {
            match openapi_document().and_then(|d| serde_json::to_string_pretty(&d).map_err(|e| e.to_string())) {
                Ok(doc) => {
                    println!("{doc}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot render the OpenAPI document: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The configuration reference, as markdown: `docs/configuration.md` is this.
pub fn config_docs() -> String {
    const INTRO: &str = "# Configuration

Environment variables, optionally from a `.env` file in the working directory (the
environment wins). Where the seed systems used two names, both are read (the first is
canonical). `tessera config check` validates the configuration as start-up does and
exits non-zero on any problem. This page is the output of `tessera config docs`.

In production (`ENVIRONMENT=production`) tessera refuses to start, printing one line per
problem, when `DEBUG` is on, the JWT secret is missing or shorter than 32 bytes, a
refresh-token key is shorter than 32 bytes, `CORS_ORIGINS` allows `*`, cookies are not
Secure, or the mail transport is `log`.

";
    format!("{INTRO}{}", tessera_core::settings::docs_markdown())
}

async fn config_check() -> ExitCode {
    let settings = match load_settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let store = existing_store(&settings).await;
    let mut problems = tessera_core::start_problems(&settings, store.as_ref().and_then(|s| s.as_ref().ok())).await;
    if let Err(e) = crate::check_logging(&settings) {
        problems.push(e);
    }
    if let Some(Err(e)) = &store {
        problems.push(format!("the database: {e}"));
    }
    let store = store.and_then(Result::ok);
    let keys = tessera_core::secrets::sources(&settings, store.as_ref()).await;
    if let Some(store) = store {
        store.close().await;
    }
    if problems.is_empty() {
        println!("configuration OK ({:?})", settings.environment);
        println!("JWT secret: {}", keys.jwt_secret);
        println!("refresh-token key: {}", keys.refresh_token_key);
        println!("MFA key: {}", keys.mfa_key);
        ExitCode::SUCCESS
    } else {
        for p in problems {
            eprintln!("configuration error: {p}");
        }
        ExitCode::from(2)
    }
}

async fn serve() -> ExitCode {
    let settings = match load_settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = crate::init_logging(&settings) {
        eprintln!("configuration error: {e}");
        return ExitCode::from(2);
    }
    let problems = settings.production_problems();
    if !problems.is_empty() {
        for p in problems {
            eprintln!("configuration error: {p}");
        }
        return ExitCode::from(2);
    }
    let docs = settings.openapi_enabled;
    let server = match crate::Server::start(settings).await {
        Ok(s) => s,
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let base = format!("http://{}", server.addr);
    tracing::info!(address = %base, "tessera listening");
    println!("tessera listening on {base}");
    if docs {
        println!("API docs: {base}/docs (OpenAPI document: {base}/openapi.json)");
    }
    if let Some(metrics) = server.metrics_addr {
        println!("metrics: http://{metrics}/metrics");
    }
    crate::shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    match server.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error while shutting down: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the core the way `serve` does (migrations, first admin), without listening.
/// The settings with their secrets resolved (exit 2 on a configuration error).
fn resolved_settings() -> Result<Settings, ExitCode> {
    let mut settings = load_settings()?;
    if let Err(e) = settings.ensure_secrets() {
        eprintln!("configuration error: {e}");
        return Err(ExitCode::from(2));
    }
    Ok(settings)
}

async fn start_core() -> Result<std::sync::Arc<tessera_core::Core>, ExitCode> {
    let settings = resolved_settings()?;
    tessera_core::Core::start(settings).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

async fn purge() -> ExitCode {
    let core = match start_core().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    match tessera_core::audit::with_audit_file(core.audit_file.clone(), core.purge(false)).await {
        Ok(Some(report)) => {
            println!("purged {report} in {:.1} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("error: another node is running the purge now; try again when it is done");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The store of the configured database, opened without changing anything (no
/// migration, no file created, no key recorded): `None` when it does not exist yet,
/// the reason when it cannot be opened.
async fn existing_store(settings: &Settings) -> Option<Result<tessera_store::Store, String>> {
    use secrecy::ExposeSecret;
    let url = settings.database_url.expose_secret();
    if tessera_store::sqlite_path(url).is_some_and(|p| !p.exists()) {
        return None;
    }
    let mut cfg = tessera_core::store_config(settings).ok()?;
    cfg.migrate = false;
    cfg.fast_paths = false;
    cfg.pii = None;
    Some(tessera_store::Store::open(&cfg).await)
}

/// Prints the `anon` and `service_role` keys, signed with the key the server signs with:
/// its setting, or the one a development server generated and keeps in the database.
/// Never writes a key: without one, it says what to set.
async fn supabase_keys() -> ExitCode {
    let mut settings = match resolved_settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let store = existing_store(&settings).await.and_then(Result::ok);
    let found = match &store {
        Some(store) => tessera_core::secrets::jwt_secret_for_tools(&mut settings, store).await,
        None if settings.jwt_secret.is_some() || settings.jwt_asymmetric() => Ok(()),
        None => Err("no JWT secret: set JWT_SECRET_KEY (or JWT_ALGORITHM with JWT_PRIVATE_KEY), or point \
                     DATABASE_URL at the server's database, where a development server keeps the one it generated"
            .to_owned()),
    };
    if let Some(store) = store {
        store.close().await;
    }
    if let Err(e) = found {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let keys = tessera_core::session::tokens::JwtKeys::from_settings(&settings)
        .and_then(|k| k.supabase_keys(tessera_core::now().timestamp()).map_err(|e| format!("{e:?}")));
    match keys {
        Ok(keys) => {
            for (role, key) in keys {
                println!("{role}={key}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A progress bar drawn with `template` when standard error is a terminal; `None`
/// elsewhere (a log, a pipe), where the commands print a line now and then instead.
fn terminal_bar(template: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal().then(|| {
        let style = indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        indicatif::ProgressBar::new(0).with_style(style)
    })
}

async fn pii(action: PiiAction) -> ExitCode {
    let core = match start_core().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rotate = matches!(action, PiiAction::Rotate);
    let started = std::time::Instant::now();
    // A bar on a terminal; elsewhere (a log, a pipe) a line per table and every 5 s.
    let bar = terminal_bar("{msg:>16} [{bar:40}] {pos}/{len} rows {per_sec} ETA {eta}");
    let mut last_line = std::time::Instant::now();
    let mut at = ("", 0);
    let result = core
        .pii_run(rotate, |p| match &bar {
            Some(bar) => {
                if (p.table, p.pass) != at {
                    at = (p.table, p.pass);
                    bar.reset();
                    bar.set_message(if p.pass == 1 { p.table.to_owned() } else { format!("{} (check)", p.table) });
                }
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
            None => {
                let ended = p.done >= p.total;
                if (p.table, p.pass) != at || ended || last_line.elapsed().as_secs() >= 5 {
                    at = (p.table, p.pass);
                    last_line = std::time::Instant::now();
                    let check = if p.pass == 1 { String::new() } else { format!(" (check, pass {})", p.pass) };
                    eprintln!("{}{check}: {}/{} rows read, {} rewritten so far", p.table, p.done, p.total, p.rewritten);
                }
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            let resumed = if report.resumed { " (resumed)" } else { "" };
            println!("{report} in {:.1} s{resumed}", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        // The cause, not the generic words an API client would get.
        Err(tessera_core::domain::Error::Internal(why) | tessera_core::domain::Error::Unavailable(why)) => {
            eprintln!("error: {why}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn import(args: ImportArgs) -> ExitCode {
    use tessera_core::import::{ImportPlan, OnConflict, Source};
    let plan = ImportPlan {
        source: match args.from {
            ImportSource::Supabase => Source::Supabase,
            ImportSource::Auth0 => Source::Auth0,
            ImportSource::Firebase => Source::Firebase,
            ImportSource::Keycloak => Source::Keycloak,
            ImportSource::Csv => Source::Csv,
        },
        file: args.file,
        database_url: args.database_url,
        identities: args.identities,
        factors: args.factors,
        hashes: args.hashes,
        hash_config: args.hash_config,
        on_conflict: match args.on_conflict {
            ImportConflict::Skip => OnConflict::Skip,
            ImportConflict::Update => OnConflict::Update,
        },
        dry_run: args.dry_run,
        batch: args.batch,
    };
    let core = match start_core().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    // A bar on a terminal; elsewhere (a log, a pipe) a line every 5 s.
    let bar = terminal_bar("importing [{bar:40}] {pos}/{len} rows {per_sec} ETA {eta}");
    let mut last_line = std::time::Instant::now();
    let run = core.import(&plan, |p| match &bar {
        Some(bar) => {
            bar.set_length(p.total.unwrap_or(p.done).max(p.done));
            bar.set_position(p.done);
        }
        None if last_line.elapsed().as_secs() >= 5 => {
            last_line = std::time::Instant::now();
            match p.total {
                Some(total) => eprintln!("{}/{total} rows", p.done),
                None => eprintln!("{} rows", p.done),
            }
        }
        None => {}
    });
    let result = tessera_core::audit::with_audit_file(core.audit_file.clone(), run).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(report) => report,
        Err(tessera_core::domain::Error::Validation(fields)) => {
            for f in fields {
                eprintln!("error: {}", f.message);
            }
            return ExitCode::from(2);
        }
        Err(tessera_core::domain::Error::Internal(why) | tessera_core::domain::Error::Unavailable(why)) => {
            eprintln!("error: {why}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for row in report.rows.iter().filter(|r| r.outcome == "refused").take(20) {
        let reason = row.reason.map(|r| r.code()).unwrap_or_default();
        eprintln!("row {}: refused ({reason}): {}", row.row, row.detail);
    }
    if report.refused > 20 {
        eprintln!("… and {} more refused rows (see --report)", report.refused - 20);
    }
    if let Some(path) = &args.report {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: cannot write the report to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let resumed = report.resumed_after.map(|r| format!(" (resumed after row {r})")).unwrap_or_default();
    println!("{report} in {:.1} s{resumed}", report.seconds);
    ExitCode::SUCCESS
}

async fn admin(action: AdminAction) -> ExitCode {
    let core = match start_core().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match action {
        AdminAction::Create { email, password_stdin: _, role, name } => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut line) {
                eprintln!("error: cannot read the password from standard input: {e}");
                return ExitCode::FAILURE;
            }
            let password = line.trim_end_matches(['\n', '\r']).to_owned();
            let new = tessera_core::account::admin::NewUser {
                email,
                password: Some(secrecy::SecretString::from(password)),
                full_name: name,
                phone: None,
                role: Some(role),
                is_active: Some(true),
                is_verified: Some(true),
                metadata: Default::default(),
                invited: false,
            };
            let actor = tessera_core::caller::Actor::system();
            let client =
                tessera_core::ClientInfo { user_agent: Some("tessera admin create".to_owned()), ..Default::default() };
            let created = tessera_core::audit::with_audit_file(
                core.audit_file.clone(),
                core.admin_create_user(&actor, new, &client),
            )
            .await;
            match created {
                Ok(u) => {
                    println!("created {} {} ({})", u.role, u.email, u.id);
                    ExitCode::SUCCESS
                }
                Err(tessera_core::domain::Error::Validation(errors)) => {
                    for e in errors {
                        eprintln!("error: {}: {}", e.field, e.message);
                    }
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        AdminAction::SeedUsers { count, prefix, days, batch } => {
            let plan = tessera_core::account::seed::SeedPlan { count, prefix, days, batch };
            let started = std::time::Instant::now();
            let mut next_report = 0;
            let result = core
                .seed_users(&plan, |done| {
                    if done >= next_report || done == count {
                        eprintln!("{done} / {count} users ({:.1} s)", started.elapsed().as_secs_f64());
                        next_report = done + 100_000;
                    }
                })
                .await;
            match result {
                Ok(n) => {
                    println!(
                        "seeded {n} users in {:.1} s (password {})",
                        started.elapsed().as_secs_f64(),
                        tessera_core::account::seed::SEED_PASSWORD
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn migrate(action: MigrateAction) -> ExitCode {
    let settings = match load_settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    // The store announces this run on a SQLite file: a server running on it stops
    // answering from its session cache while this runs, and forgets it afterwards.
    let config = tessera_store::StoreConfig {
        acquire_timeout: settings.db_pool_timeout,
        ..tessera_store::StoreConfig::tool(settings.database_url.expose_secret())
    };
    let store = match tessera_store::Store::open(&config).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match action {
        MigrateAction::Up => store.migrate_up().await.map(|_| println!("migrations applied")),
        MigrateAction::Down => store.migrate_down().await.map(|_| println!("rolled back one migration")),
        MigrateAction::Status => store.migration_status().await.map(|list| {
            for (name, status) in list {
                println!("{name}\t{status}");
            }
        }),
    };
    store.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migration error: {e}");
            ExitCode::FAILURE
        }
    }
}
