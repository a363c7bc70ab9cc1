use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use omninode_bridge::config::Settings;
use omninode_bridge::{app, cli, telemetry};

#[derive(Parser)]
#[command(
    name = "omninode-bridge",
    version,
    about = "BLAKE3 metadata stamping service"
)]
struct Cli {
    /// Configuration file (TOML) overriding the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Stamp local files in place (offline; directories are walked).
    Stamp(cli::StampArgs),
    /// Validate the stamps of local files (offline); exits 1 if any file fails.
    Validate(cli::ValidateArgs),
    /// Kafka topic administration.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create every topic (SPEC §2.2) with its partition count; existing topics are left alone.
    Create,
    /// Print every topic name and partition count.
    List,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("omninode-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&settings.log);
    match args.command.unwrap_or(Command::Serve) {
        Command::Stamp(a) => cli::stamp_files(&a),
        Command::Validate(a) => cli::validate_files(&a),
        Command::Topics {
            action: TopicsAction::List,
        } => {
            for (name, partitions) in
                omninode_bridge::events::topics::all_topics(&settings.kafka.topic_env)
            {
                println!("{name}\t{partitions}");
            }
            ExitCode::SUCCESS
        }
        Command::Topics {
            action: TopicsAction::Create,
        } => run_async(async move {
            if settings.kafka.brokers.is_empty() {
                anyhow::bail!("kafka.brokers is empty: set OMNINODE__KAFKA__BROKERS (or kafka.brokers in --config)");
            }
            let (created, existing) =
                omninode_bridge::kafka::admin::create_topics(&settings.kafka).await?;
            println!(
                "created {} topic(s), {} already existed",
                created.len(),
                existing.len()
            );
            for t in created {
                println!("  + {t}");
            }
            Ok(())
        }),
        Command::Serve => run_async(async move { app::serve(settings).await }),
        Command::Migrate => run_async(async move {
            let db = omninode_bridge::store::Db::new(&settings.database)?;
            let applied = db.migrate().await?;
            println!(
                "{} migration(s) applied on {}",
                applied.len(),
                db.backend().as_str()
            );
            for m in applied {
                println!("  {m}");
            }
            Ok(())
        }),
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omninode-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let _ = omninode_bridge::telemetry::prometheus();
        fut.await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omninode-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
