//! The `shadowtap` binary: parses the command line and hands over to the library.
//! Errors are reported here, at the edge, with their whole cause chain.

use anyhow::Context;
use clap::{Parser, Subcommand};
use shadowtap::config::{Config, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of the system allocator: the mirror path allocates on the runtime thread
/// and frees on the comparison workers, the pattern glibc's per-thread caches handle worst
/// (measured: see docs/PERFORMANCE.md, "What the optimisations bought").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "shadowtap",
    version,
    about = "A shadow-traffic mirroring reverse proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy. Flags override the config file; with flags alone (no file) the proxy
    /// runs one catch-all route to --primary.
    Run {
        /// TOML config file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Validate a config file and print the effective config (defaults filled in).
    Check {
        /// TOML config file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the built-in demo: backends, the proxy, steady traffic and a live report.
    Demo {
        /// Stop after this long (e.g. "5s", "1m"); runs until Ctrl-C when omitted.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Requests per second the traffic generator sends.
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, overrides } => run(config, overrides),
        Command::Check { config } => check(config),
        Command::Demo { duration, rate } => demo(duration, rate),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<PathBuf>, overrides: &Overrides) -> Result<Config, ExitCode> {
    Config::load(path.as_deref(), overrides).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })
}

fn check(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = match load(Some(path.clone()), &Overrides::default()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    print!("{}", config.to_toml());
    eprintln!("{}: ok", path.display());
    Ok(ExitCode::SUCCESS)
}

fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        // One worker: a current-thread runtime has no work-stealing overhead at all.
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(path: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<ExitCode> {
    let config = match load(path, &overrides) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    shadowtap::telemetry::logging::init(config.logging.format);
    runtime(config.runtime.worker_threads)?.block_on(async {
        let app = shadowtap::BoundApp::bind(config).await?;
        app.serve(shadowtap::shutdown::signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

fn demo(duration: Option<Duration>, rate: u32) -> anyhow::Result<ExitCode> {
    runtime(None)?.block_on(async {
        let stop = async move {
            match duration {
                Some(duration) => {
                    tokio::select! {
                        _ = tokio::time::sleep(duration) => {}
                        _ = shadowtap::shutdown::signal() => {}
                    }
                }
                None => shadowtap::shutdown::signal().await,
            }
        };
        shadowtap::demo::run(shadowtap::demo::DemoOptions { rate }, stop).await?;
        Ok(ExitCode::SUCCESS)
    })
}
