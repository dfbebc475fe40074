//! The command line: `serve` (the default), `migrate`, `config`, `openapi`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tessera_core::settings::{Settings, SETTINGS};
use tessera_store::migration::Migrator;
use tessera_store::MigratorTrait;

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

/// Runs the command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate { action } => migrate(action.unwrap_or(MigrateAction::Up)).await,
        Command::Config { action: ConfigAction::Docs } => {
            print!("{}", config_docs());
            ExitCode::SUCCESS
        }
        Command::Config { action: ConfigAction::Check } => config_check(),
        Command::Openapi => match serde_json::to_string_pretty(&tessera_http::openapi::document()) {
            Ok(doc) => {
                println!("{doc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot render the OpenAPI document: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The settings table, as markdown.
pub fn config_docs() -> String {
    let mut out = String::from("| setting | default | meaning |\n|---|---|---|\n");
    for s in SETTINGS {
        let names = s.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" / ");
        out.push_str(&format!("| {names} | {} | {} |\n", s.default, s.meaning));
    }
    out
}

fn config_check() -> ExitCode {
    let settings = match load_settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let problems = settings.production_problems();
    if problems.is_empty() {
        println!("configuration OK ({:?})", settings.environment);
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

async fn migrate(action: MigrateAction) -> ExitCode {
    let settings = match load_settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let pool = tessera_store::PoolConfig {
        size: 1,
        max_overflow: 0,
        acquire_timeout: settings.db_pool_timeout,
        recycle: settings.db_pool_recycle,
    };
    let db = match tessera_store::connect(settings.database_url.expose_secret(), &pool).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match action {
        MigrateAction::Up => Migrator::up(&db, None).await.map(|_| println!("migrations applied")),
        MigrateAction::Down => Migrator::down(&db, Some(1)).await.map(|_| println!("rolled back one migration")),
        MigrateAction::Status => Migrator::get_migration_with_status(&db).await.map(|list| {
            for m in list {
                println!("{}\t{}", m.name(), m.status());
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migration error: {e}");
            ExitCode::FAILURE
        }
    }
}
