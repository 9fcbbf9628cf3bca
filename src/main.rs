//! The `shadowtap` binary: parses the command line and hands over to the library.
//! Errors are reported here, at the edge, with their whole cause chain.

use anyhow::Context;
use clap::{Parser, Subcommand};
use shadowtap::config::{Config, Overrides};
use shadowtap::telemetry::logging::ErrorChain;
use shadowtap::verdict::{output, Decision, Source};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of the system allocator: the mirror path allocates on the runtime thread
/// and frees on the comparison workers, the pattern glibc's per-thread caches handle worst
/// (see docs/PERFORMANCE.md, "What bought what", c754849).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `verdict --prometheus` looks this far back unless `--window` says otherwise.
const DEFAULT_VERDICT_WINDOW: Duration = Duration::from_secs(600);

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
        "  shadowtap verdict --prometheus http://prometheus:9090 --selector '{app=\"checkout\"}'\n",
        "\n",
        "Exit codes:\n",
        "  0  success (run: stopped by SIGINT/SIGTERM after draining)\n",
        "  1  start-up or runtime failure (a port cannot be bound, the diff log cannot be opened)\n",
        "  2  invalid or unreadable config file, or bad command-line usage\n",
        "  (verdict has its own: 0 pass, 1 fail, 2 inconclusive, 3 error; see shadowtap verdict --help)\n",
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
    /// Judge a shadow against thresholds: pass, fail or inconclusive, for a canary step.
    #[command(
        long_about = "Judge a shadow against thresholds: pass, fail or inconclusive, for a canary \
step in CI/CD. Each (route, shadow) is judged on its divergence ratio and shadow error ratio by \
their 95 % Wilson intervals: a ratio passes when the upper bound is at or under its threshold, \
fails when the lower bound is over it, and is inconclusive otherwise or with fewer than \
min_pairs. Latency (p99 of shadow minus primary) is reported, and judged once a latency \
threshold is set. Thresholds come from [verdict] in --config, then these flags; a route's \
[verdict.routes.\"ROUTE\"] overrides win over both.\n\n\
--admin judges one instance's totals since it started (its API keeps no window; --window is \
refused). --prometheus judges a fleet: each series' increase over --window, summed across \
every instance the selector matches.\n\n\
Either source may be https://: its certificate is verified for the URL's host against --cacert, \
else the system's roots (as shadowtap ctl does). An admin port with admin.token_file needs \
--token-file (or SHADOWTAP_ADMIN_TOKEN).",
        after_help = concat!(
            "Examples:\n",
            "  shadowtap verdict --admin http://127.0.0.1:9090\n",
            "  shadowtap verdict --prometheus http://prometheus:9090 --selector '{app=\"checkout\"}' \\\n",
            "      --window 10m --wait 15m --junit verdict.xml\n",
            "  shadowtap verdict --admin http://127.0.0.1:9090 --config shadowtap.toml --format json\n",
            "  shadowtap verdict --admin https://10.0.0.5:9901 --cacert admin-ca.pem --token-file token\n",
            "\n",
            "Exit codes:\n",
            "  0  pass: every route and shadow is within every threshold\n",
            "  1  fail: a threshold is exceeded with 95 % confidence\n",
            "  2  inconclusive: too little evidence yet (or nothing to judge)\n",
            "  3  error: unreachable source (or its TLS certificate not trusted), bad query, selector\n",
            "     matching nothing, bad config or arguments (a bad URL, an unreadable --cacert)",
        )
    )]
    Verdict(Box<VerdictArgs>),
    /// Replay recorded traffic against a build and judge it: the shadow's answers compared
    /// with the recorded primary answers (or a live --primary's), for CI.
    #[command(
        long_about = "Replay recorded traffic (files written by `run --record`, or a browser's .har \
export) against --shadow, compare each answer with the recorded primary answer (or, with \
--primary, a live stable build's; --secondary adds noise detection) using the same comparison \
engine, route config, noise learning and redaction as `run`, print the per-route report and \
judge it with the verdict's thresholds. Only GET, HEAD and OPTIONS are replayed unless \
--methods opts in. A corrupt or truncated line is reported with its line number and skipped.",
        after_help = concat!(
            "Examples:\n",
            "  shadowtap replay traffic.jsonl --shadow http://127.0.0.1:8082\n",
            "  shadowtap replay traffic.jsonl.2 traffic.jsonl.1 traffic.jsonl --shadow http://candidate:8080 \\\n",
            "      --config shadowtap.toml --concurrency 32 --junit replay.xml\n",
            "  shadowtap replay export.har --shadow http://127.0.0.1:8082 --primary http://127.0.0.1:8081 --speed 1\n",
            "\n",
            "Exit codes:\n",
            "  0  pass: every route is within every threshold\n",
            "  1  fail: a threshold is exceeded with 95 % confidence\n",
            "  2  inconclusive: too little evidence (fewer than min_pairs compared)\n",
            "  3  error: unreadable file, nothing to replay, unreachable shadow or primary, bad config or arguments",
        )
    )]
    Replay(Box<ReplayArgs>),
}

/// `shadowtap replay`'s flags.
#[derive(clap::Args)]
struct ReplayArgs {
    /// Recordings (JSON Lines of HAR entries, or a browser's .har), replayed in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The build under test.
    #[arg(long, value_name = "URL")]
    shadow: String,
    /// A live stable build to compare against [default: the recorded answers].
    #[arg(long, value_name = "URL")]
    primary: Option<String>,
    /// A second stable build: differences between the two stable answers are noise.
    #[arg(long, value_name = "URL")]
    secondary: Option<String>,
    /// Route config: routes, [compare], [verdict] and [mirror] of a proxy config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Recorded gaps divided by this (1 keeps them; 0 sends as fast as --concurrency allows).
    #[arg(long, value_name = "FACTOR", default_value_t = 0.0, value_parser = non_negative)]
    speed: f64,
    /// Send this many requests per second instead (overrides --speed).
    #[arg(long, value_name = "N", value_parser = non_negative)]
    rate: Option<f64>,
    /// Requests in flight at most.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// Only this route: a recorded route name, or a path prefix starting with / (repeatable).
    #[arg(long = "route", value_name = "NAME|/PREFIX")]
    routes: Vec<String>,
    /// Methods replayed: a comma list (GET,HEAD,POST) or "all"; others may have side
    /// effects [default: GET,HEAD,OPTIONS].
    #[arg(long, value_name = "LIST|all", value_delimiter = ',')]
    methods: Vec<String>,
    /// Only entries that started at or after this time (RFC 3339, e.g. 2026-12-07T04:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    since: Option<std::time::SystemTime>,
    /// Only entries that started before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    until: Option<std::time::SystemTime>,
    /// At most this many entries.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[command(flatten)]
    thresholds: ThresholdFlags,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = VerdictFormat::Table)]
    format: VerdictFormat,
    /// Also write the verdict as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

fn rfc3339(text: &str) -> Result<std::time::SystemTime, String> {
    shadowtap::record::har::parse_time(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time (2026-12-07T04:00:00Z)"))
}

/// The verdict's thresholds by flag, shared by `verdict` and `replay`: each replaces the
/// config's own value (a route's override still wins for its route).
#[derive(clap::Args)]
struct ThresholdFlags {
    /// Highest divergence ratio [default: 0.05].
    #[arg(long, value_name = "RATIO", value_parser = ratio)]
    max_divergence_ratio: Option<f64>,
    /// Highest ratio of shadow requests that failed or timed out [default: 0.05].
    #[arg(long, value_name = "RATIO", value_parser = ratio)]
    max_shadow_error_ratio: Option<f64>,
    /// Fewest compared pairs before a ratio is judged [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    min_pairs: Option<u64>,
    /// Highest p99 latency delta, shadow minus primary (e.g. 20ms) [default: not judged].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_latency_delta: Option<Duration>,
    /// Highest p99 latency delta over the primary's p99 (e.g. 0.5) [default: not judged].
    #[arg(long, value_name = "RATIO", value_parser = non_negative)]
    max_latency_delta_ratio: Option<f64>,
}

impl ThresholdFlags {
    fn overrides(&self) -> shadowtap::config::verdict::Overrides {
        shadowtap::config::verdict::Overrides {
            max_divergence_ratio: self.max_divergence_ratio,
            max_shadow_error_ratio: self.max_shadow_error_ratio,
            min_pairs: self.min_pairs,
            max_latency_delta: self.max_latency_delta,
            max_latency_delta_ratio: self.max_latency_delta_ratio,
        }
    }
}

/// `shadowtap verdict`'s flags.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["admin", "prometheus"]))]
struct VerdictArgs {
    /// One instance's admin address (e.g. http://127.0.0.1:9090): its totals since start.
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// A Prometheus that scrapes the fleet (e.g. http://prometheus:9090).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// For an https:// source: the PEM certificate(s) of the CA that signed its certificate
    /// (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// A file holding the admin bearer token (admin.token_file of the proxy); trimmed. Shown
    /// to --admin only [default: the SHADOWTAP_ADMIN_TOKEN environment variable].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Label matchers narrowing every query (e.g. '{app="checkout"}').
    #[arg(long, value_name = "SELECTOR", conflicts_with = "admin")]
    selector: Option<String>,
    /// How far back the Prometheus source looks [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "admin")]
    window: Option<Duration>,
    /// Config file whose [verdict] section holds the thresholds (a whole proxy config, or
    /// a file with [verdict] alone).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    thresholds: ThresholdFlags,
    /// Ask again until the verdict is decided or this deadline passes (e.g. 15m).
    #[arg(long, value_name = "DEADLINE", value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
    /// Time between two asks under --wait.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    interval: Duration,
    /// Deadline of each exchange with the source.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = VerdictFormat::Table)]
    format: VerdictFormat,
    /// Also write the verdict as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum VerdictFormat {
    /// A table for people.
    Table,
    /// JSON for machines.
    Json,
}

/// `verdict`'s exit code for an error (bad arguments, an unreachable source, a bad query).
const EXIT_VERDICT_ERROR: u8 = 3;

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a ratio from 0 to 1 (0.05 is 5 %)")),
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a number of at least 0")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `verdict` answers bad arguments with 3 (2 means inconclusive there).
        Err(error)
            if error.use_stderr()
                && matches!(
                    std::env::args().nth(1).as_deref(),
                    Some("verdict" | "replay")
                ) =>
        {
            let _ = error.print();
            return ExitCode::from(EXIT_VERDICT_ERROR);
        }
        Err(error) => error.exit(),
    };
    let result = match cli.command {
        Command::Run { config, overrides } => run(config, *overrides),
        Command::Check { config } => check(config),
        Command::Demo { duration, rate } => demo(duration, rate),
        Command::Verdict(args) => return verdict(*args),
        Command::Replay(args) => return replay(*args),
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
    let config = match load(path.clone(), &overrides) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    shadowtap::telemetry::logging::init(config.logging.format);
    runtime(config.runtime.worker_threads)?.block_on(async {
        let source = shadowtap::reload::ConfigSource { path, overrides };
        let app = shadowtap::BoundApp::bind(config)
            .await?
            .reloads_from(source);
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

/// Runs `shadowtap verdict` and maps its outcome to the exit codes its help gives.
fn verdict(args: VerdictArgs) -> ExitCode {
    let error = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_VERDICT_ERROR)
    };
    let mut config = match &args.config {
        Some(path) => match shadowtap::config::VerdictConfig::load(path) {
            Ok(config) => config,
            Err(problem) => return error(ErrorChain(&problem).to_string()),
        },
        None => shadowtap::config::VerdictConfig::default(),
    };
    config.thresholds = args.thresholds.overrides().over(&config.thresholds);
    let source = match (args.admin, args.prometheus) {
        (Some(url), _) => Source::Admin(url),
        (None, Some(url)) => {
            let selector = args.selector.as_deref().unwrap_or("{}");
            let matchers = match shadowtap::verdict::sources::prometheus::matchers(selector) {
                Ok(matchers) => matchers,
                Err(problem) => return error(problem.to_string()),
            };
            Source::Prometheus(shadowtap::verdict::sources::prometheus::Fleet {
                url,
                matchers,
                window: args.window.unwrap_or(DEFAULT_VERDICT_WINDOW),
            })
        }
        (None, None) => return error("give --admin URL or --prometheus URL".to_string()),
    };
    let admin_token = match verdict_admin_token(&source, args.token_file.as_deref()) {
        Ok(token) => token,
        Err(message) => return error(message),
    };
    let request = shadowtap::verdict::Request {
        source,
        config,
        timeout: args.timeout,
        access: shadowtap::verdict::Access {
            cacert: args.cacert,
            admin_token,
        },
    };
    let runtime = match runtime(Some(1)) {
        Ok(runtime) => runtime,
        Err(problem) => return error(format!("{problem:#}")),
    };
    let outcome = runtime.block_on(async {
        match args.wait {
            Some(deadline) => {
                request
                    .evaluate_until(deadline, args.interval, |report| {
                        eprintln!(
                            "inconclusive so far ({} routes); asking again in {}",
                            report.routes.len(),
                            humantime::format_duration(args.interval)
                        )
                    })
                    .await
            }
            None => request.evaluate().await,
        }
    });
    let report = match outcome {
        Ok(report) => report,
        Err(problem) => {
            let message = ErrorChain(&problem).to_string();
            if let Some(path) = &args.junit {
                let _ = std::fs::write(path, output::junit_error(&message));
            }
            if let VerdictFormat::Json = args.format {
                println!("{}", output::json_error(&message));
            }
            return error(message);
        }
    };
    match args.format {
        VerdictFormat::Table => print!("{}", output::table(&report)),
        VerdictFormat::Json => println!("{}", output::json(&report)),
    }
    if let Some(path) = &args.junit {
        if let Err(problem) = std::fs::write(path, output::junit(&report)) {
            return error(format!("cannot write {}: {problem}", path.display()));
        }
    }
    ExitCode::from(match report.verdict {
        Decision::Pass => 0,
        Decision::Fail => 1,
        Decision::Inconclusive => 2,
    })
}

/// The admin token `verdict` shows, to `--admin` only: `--token-file` with `--prometheus` is
/// refused, so the token cannot reach a server that is not the admin port.
fn verdict_admin_token(
    source: &Source,
    token_file: Option<&std::path::Path>,
) -> Result<Option<shadowtap::tls::endpoint::BearerToken>, String> {
    match source {
        Source::Admin(_) => shadowtap::tls::endpoint::admin_token(token_file)
            .map_err(|problem| ErrorChain(&problem).to_string()),
        Source::Prometheus(_) if token_file.is_some() => Err(
            "--token-file is for --admin only: the admin token is never sent to a Prometheus"
                .to_string(),
        ),
        Source::Prometheus(_) => Ok(None),
    }
}

/// Runs `shadowtap replay` and maps its outcome to the verdict's exit codes.
fn replay(args: ReplayArgs) -> ExitCode {
    use std::io::IsTerminal;
    let error = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_VERDICT_ERROR)
    };
    let pacing = match (args.rate, args.speed) {
        (Some(rate), _) if rate > 0.0 => shadowtap::replay::send::Pacing::Rate(rate),
        (_, speed) if speed > 0.0 => shadowtap::replay::send::Pacing::Speed(speed),
        _ => shadowtap::replay::send::Pacing::Flat,
    };
    let options = shadowtap::replay::Options {
        files: args.files,
        shadow: args.shadow,
        primary: args.primary,
        secondary: args.secondary,
        config: args.config,
        thresholds: args.thresholds.overrides(),
        pacing,
        concurrency: usize::try_from(args.concurrency).unwrap_or(usize::MAX),
        filters: shadowtap::replay::select::Filters {
            methods: args
                .methods
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect(),
            routes: args.routes,
            since: args.since,
            until: args.until,
            limit: args.limit,
        },
        progress: std::io::stderr().is_terminal(),
    };
    let runtime = match runtime(None) {
        Ok(runtime) => runtime,
        Err(problem) => return error(format!("{problem:#}")),
    };
    let outcome = match runtime.block_on(shadowtap::replay::run(options)) {
        Ok(outcome) => outcome,
        Err(problem) => {
            let message = ErrorChain(&problem).to_string();
            if let Some(path) = &args.junit {
                let _ = std::fs::write(path, output::junit_error(&message));
            }
            if let VerdictFormat::Json = args.format {
                println!("{}", output::json_error(&message));
            }
            return error(message);
        }
    };
    for skipped in &outcome.skipped {
        eprintln!(
            "warning: {} line {} skipped: {}",
            skipped.file, skipped.line, skipped.reason
        );
    }
    let counts = &outcome.counts;
    match args.format {
        VerdictFormat::Table => {
            let excluded = &counts.excluded;
            println!(
                "replay: {} entries read, {} lines skipped; left out: {} by method, {} by route, {} by time, {} cut at record time, {} by limit; {} answered, {} failed in {:.2}s",
                counts.read,
                counts.skipped,
                excluded.method,
                excluded.route,
                excluded.time,
                excluded.truncated,
                excluded.limit,
                counts.answered,
                counts.failed,
                counts.seconds
            );
            println!();
            print!("{}", shadowtap::replay::summary::routes(&outcome.routes));
            println!();
            print!(
                "{}",
                shadowtap::replay::summary::divergent(&outcome.samples)
            );
            println!("verdict:");
            print!("{}", output::table(&outcome.verdict));
        }
        VerdictFormat::Json => {
            let verdict: serde_json::Value =
                serde_json::from_str(&output::json(&outcome.verdict)).unwrap_or_default();
            let value = serde_json::json!({
                "replay": counts,
                "routes": outcome.routes,
                "diverged": outcome.samples,
                "verdict": verdict,
            });
            println!("{value}");
        }
    }
    if let Some(path) = &args.junit {
        if let Err(problem) = std::fs::write(path, output::junit(&outcome.verdict)) {
            return error(format!("cannot write {}: {problem}", path.display()));
        }
    }
    ExitCode::from(match outcome.verdict.verdict {
        Decision::Pass => 0,
        Decision::Fail => 1,
        Decision::Inconclusive => 2,
    })
}
