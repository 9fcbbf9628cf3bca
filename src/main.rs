//! The `shadowtap` binary: parses the command line and hands over to the library.
//! Errors are reported here, at the edge, with their whole cause chain.

use anyhow::Context;
use clap::{Parser, Subcommand};
use shadowtap::config::{Config, Overrides};
use shadowtap::telemetry::logging::ErrorChain;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of the system allocator: the mirror path allocates on the runtime thread
/// and frees on the comparison workers, the pattern glibc's per-thread caches handle worst
/// (see docs/PERFORMANCE.md, "What bought what", c754849).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A config that cannot be read or is invalid (exit code 2, as clap's usage errors).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "shadowtap",
    version,
    about = "A shadow-traffic mirroring reverse proxy",
    long_about = "A shadow-traffic mirroring reverse proxy: serves every request from the primary \
upstream, mirrors copies to shadow upstreams off the live path, and compares their answers.",
    after_help = concat!(
        "Examples:\n",
        "  shadowtap demo --duration 30s                  # the whole product on loopback\n",
        "  shadowtap check --config shadowtap.toml        # validate; print the effective config\n",
        "  shadowtap run --config shadowtap.toml          # run from a config file\n",
        "  shadowtap run --primary http://127.0.0.1:8081 --shadow http://127.0.0.1:8082\n",
        "\n",
        "Exit codes:\n",
        "  0  success (run: stopped by SIGINT/SIGTERM after draining)\n",
        "  1  start-up or runtime failure (a port cannot be bound, the diff log cannot be opened)\n",
        "  2  invalid or unreadable config file, or bad command-line usage\n",
        "\n",
        "Logs go to stderr; the level comes from RUST_LOG (default: info). NO_COLOR=1 turns colour off.",
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy. Flags override the config file; with flags alone (no file) the proxy
    /// runs one catch-all route to --primary.
    #[command(after_help = concat!(
        "Examples:\n",
        "  shadowtap run --config /etc/shadowtap/shadowtap.toml\n",
        "  shadowtap run --primary http://127.0.0.1:8081 --listen 0.0.0.0:8080\n",
        "  shadowtap run --primary http://10.0.0.5:8080 --shadow http://10.0.0.6:8080 \\\n",
        "      --sample 10 --mirror-methods GET,HEAD --diff-log /var/log/shadowtap/diffs.jsonl\n",
        "  shadowtap run --primary http://127.0.0.1:8081 --tls-cert cert.pem --tls-key key.pem\n",
        "\n",
        "Exit codes:\n",
        "  0  stopped by SIGINT/SIGTERM after draining in-flight requests\n",
        "  1  start-up failure (a listener or the admin port cannot be bound, the diff log cannot be opened)\n",
        "  2  invalid or unreadable config file (every problem is listed with its key), or bad usage",
    ))]
    Run {
        /// TOML config file (see config/*.toml and `shadowtap check`).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Boxed: the flags are many and `Command` is only as small as its largest variant.
        #[command(flatten)]
        overrides: Box<Overrides>,
    },
    /// Validate a config file and print the effective config (defaults filled in) on stdout;
    /// the printed config is itself a valid config file.
    #[command(after_help = concat!(
        "Examples:\n",
        "  shadowtap check --config shadowtap.toml\n",
        "  shadowtap check --config shadowtap.toml > effective.toml   # every default written out\n",
        "\n",
        "Exit codes:\n",
        "  0  the config is valid (\"FILE: ok\" on stderr)\n",
        "  1  the effective config cannot be printed (a bug: please report it)\n",
        "  2  the file cannot be read, or is invalid: every problem is listed with its key path",
    ))]
    Check {
        /// TOML config file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Control a running shadowtap through its admin port: reload its config, pause, resume
    /// or re-rate mirroring, show the mirror switches.
    #[command(after_help = concat!(
        "Examples:\n",
        "  shadowtap ctl status\n",
        "  shadowtap ctl --admin http://10.0.0.5:9901 --token-file /run/secrets/admin-token mirror pause\n",
        "  shadowtap ctl mirror pause --route checkout --shadow canary\n",
        "  shadowtap ctl mirror percent 10 --shadow canary\n",
        "  shadowtap ctl mirror resume\n",
        "  shadowtap ctl reload\n",
        "  shadowtap ctl --format json status\n",
        "\n",
        "The token: --token-file FILE, or the SHADOWTAP_ADMIN_TOKEN environment variable.\n",
        "\n",
        "Exit codes:\n",
        "  0  done\n",
        "  1  the admin port refused or failed the request (400, 401, 404, 5xx; the reason is printed)\n",
        "  2  bad usage (a bad --admin URL, an unreadable --token-file)\n",
        "  3  the admin port could not be reached (nothing listening, no answer in time)",
    ))]
    Ctl(shadowtap::ctl::CtlArgs),
    /// Run the built-in demo: backends, the proxy, steady traffic and a live report.
    #[command(after_help = concat!(
        "Examples:\n",
        "  shadowtap demo                   # until Ctrl-C\n",
        "  shadowtap demo --duration 30s --rate 50\n",
        "\n",
        "Exit codes:\n",
        "  0  the demo ran and stopped (at --duration or Ctrl-C)\n",
        "  1  the demo could not start (no loopback port)\n",
        "  2  bad usage",
    ))]
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
        Command::Run { config, overrides } => run(config, *overrides),
        Command::Check { config } => check(config),
        Command::Demo { duration, rate } => demo(duration, rate),
        Command::Ctl(args) => ctl(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the config; on failure prints why with the whole cause chain (the OS error of an
/// unreadable file, every problem of an invalid one) and gives the exit code for it.
fn load(path: Option<PathBuf>, overrides: &Overrides) -> Result<Config, ExitCode> {
    Config::load(path.as_deref(), overrides).map_err(|error| {
        eprintln!("error: {}", ErrorChain(&error));
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = match load(Some(path.clone()), &Overrides::default()) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let printed = config
        .to_toml()
        .context("cannot print the effective config")?;
    print!("{printed}");
    for warning in config.warnings() {
        eprintln!("WARNING: {warning}");
    }
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

fn ctl(args: shadowtap::ctl::CtlArgs) -> anyhow::Result<ExitCode> {
    let code = runtime(Some(1))?.block_on(shadowtap::ctl::run(args));
    Ok(ExitCode::from(code))
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
