//! `login-service`: serve (default), `users add`, `keys rotate`,
//! `keys rewrap`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use login_service::{App, BoxError, Config, Metrics, config};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Email + password in, EdDSA-signed JWT access tokens out"
)]
struct Cli {
    /// `sqlite://FILE` (created on first start) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = config::DEFAULT_DATABASE_URL
    )]
    database_url: String,

    /// File holding the 32-byte key that encrypts private signing keys in
    /// the database (raw or base64). Required with PostgreSQL (the same file
    /// on every instance); with SQLite it defaults to the database file plus
    /// `.kek`, created on first start.
    #[arg(long, env = "KEY_ENCRYPTION_KEY_FILE", global = true)]
    key_encryption_key_file: Option<PathBuf>,

    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[arg(long, env = "LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// `iss` of issued tokens [default: http://<listen>]
    #[arg(long, env = "ISSUER")]
    issuer: Option<String>,
    /// `aud` of issued access tokens.
    #[arg(long, env = "AUDIENCE", default_value = config::DEFAULT_AUDIENCE)]
    audience: String,
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = config::DEFAULT_ACCESS_TOKEN_TTL_SECS)]
    access_token_ttl_secs: u64,
    /// Sliding: each refresh token lives this long; each refresh issues a new one.
    #[arg(long, env = "REFRESH_TOKEN_TTL_SECS", default_value_t = config::DEFAULT_REFRESH_TOKEN_TTL_SECS)]
    refresh_token_ttl_secs: u64,
    /// Absolute: a login session ends this long after the password was
    /// entered, however often it is refreshed.
    #[arg(long, env = "SESSION_MAX_LIFETIME_SECS", default_value_t = config::DEFAULT_SESSION_MAX_LIFETIME_SECS)]
    session_max_lifetime_secs: u64,
    /// How often to re-read signing keys (to follow `keys rotate`).
    #[arg(long, env = "KEY_RELOAD_SECS", default_value_t = config::DEFAULT_KEY_RELOAD_SECS)]
    key_reload_secs: u64,
    /// Failed logins per account before lockouts start.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = config::DEFAULT_LOGIN_FAILURES_PER_ACCOUNT)]
    login_failures_per_account: u32,
    /// Failed logins per client address before lockouts start.
    #[arg(long, env = "LOGIN_FAILURES_PER_ADDRESS", default_value_t = config::DEFAULT_LOGIN_FAILURES_PER_ADDRESS)]
    login_failures_per_address: u32,
    /// Failed logins per device cookie before that device is locked out.
    #[arg(long, env = "LOGIN_FAILURES_PER_DEVICE", default_value_t = config::DEFAULT_LOGIN_FAILURES_PER_DEVICE)]
    login_failures_per_device: u32,
    /// Registrations per client address per hour.
    #[arg(long, env = "REGISTRATIONS_PER_ADDRESS", default_value_t = config::DEFAULT_REGISTRATIONS_PER_ADDRESS)]
    registrations_per_address: u32,
    /// While password hashes fill every CPU, wake a thread pinned to each
    /// CPU every this many microseconds, so other routes wait less behind a
    /// hash during a login storm, for a few percent of hashing throughput
    /// (Linux; 0, the default: off; at least 100). 500 is what was measured.
    /// Where allowed, --realtime-workers does better.
    #[arg(long, env = "HASHING_TICK_US", default_value_t = 0)]
    hashing_tick_us: u64,
    /// Run the request-handling threads at real-time priority (Linux,
    /// SCHED_RR 1), so during a login storm requests do not wait behind a
    /// password hash for the CPU. Needs root, CAP_SYS_NICE or
    /// RLIMIT_RTPRIO >= 1; without it, a warning and no change.
    #[arg(long, env = "REALTIME_WORKERS")]
    realtime_workers: bool,
    /// Require a server nonce in every DPoP proof (RFC 9449 §8, §9), a new
    /// one every this many seconds (10 to 86400), the previous one still
    /// accepted for as long again; clients are told the nonce with
    /// `use_dpop_nonce`. Every instance on the database shares the nonces
    /// if all use the same value. 0, the default: off.
    #[arg(long, env = "DPOP_NONCE_SECS", default_value_t = 0, value_parser = nonce_secs)]
    dpop_nonce_secs: u64,
    /// A reverse proxy (CIDR or address) whose Forwarded / X-Forwarded-For
    /// names the client; repeat for more, or comma-separate in the env.
    #[arg(
        long = "trusted-proxy",
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = login_service::parse_trusted_proxy
    )]
    trusted_proxies: Vec<login_service::IpNet>,
    /// Do not serve POST /auth/register (accounts come from `users add`).
    #[arg(long, env = "NO_REGISTER")]
    no_register: bool,
    /// Do not serve the Swagger UI at /docs (/openapi.json stays).
    #[arg(long, env = "NO_DOCS")]
    no_docs: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics on a second listener
    /// [default: off]. Unauthenticated: keep it off the public network.
    #[arg(long, env = "METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// `redis://…`: publish revocations there and mirror them from there,
    /// so every instance and resource server refuses them; without it each
    /// instance polls the database.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// The Redis keys' prefix; resource servers must use the same.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = tower_jwt_auth::revoke::redis::DEFAULT_KEY_PREFIX)]
    redis_key_prefix: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create an account; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a signing key. It is published at once and signs after the delay,
    /// so every instance and verifier knows it first; the old key stays
    /// published until its tokens have expired.
    Rotate {
        /// Must exceed the instances' key reload interval and the JWKS
        /// `max-age` (60 s) this service advertises to verifiers that fetch
        /// it; at least 1, since a key must be published before it signs.
        #[arg(
            long,
            default_value_t = config::DEFAULT_ACTIVATE_AFTER_SECS,
            allow_negative_numbers = true,
            value_parser = clap::value_parser!(i64).range(1..)
        )]
        activate_after_secs: i64,
    },
    /// Re-encrypt every private signing key under a new key-encryption key,
    /// in one transaction. Then restart every instance with the new file.
    Rewrap {
        /// The new key file (32 bytes, raw or base64), e.g. from
        /// `(umask 077; openssl rand -base64 32 > new.kek)`.
        #[arg(long)]
        new_key_encryption_key_file: PathBuf,
    },
}

/// `--dpop-nonce-secs`: 0 (off), or a rotation a client can follow (not
/// under 10 s, where nonces would expire between an answer and the next
/// request) that still rotates (not over a day).
fn nonce_secs(value: &str) -> Result<u64, String> {
    let secs: u64 = value.parse().map_err(|e| format!("{e}"))?;
    match secs {
        0 | 10..=86_400 => Ok(secs),
        _ => Err("0 (off) or 10 to 86400 seconds".to_owned()),
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "login_service=info,tower_http=info,tower_jwt_auth=info".into()
            }),
        )
        .init();
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if cli.command.is_none() && cli.serve.realtime_workers {
        login_service::realtime::on_workers(&mut runtime);
    }
    let result = match runtime.build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: the messages say what to do.
            eprintln!("login-service: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        None => serve(cli.database_url, cli.key_encryption_key_file, cli.serve).await,
        Some(Command::Users(UsersCommand::Add { email, role, name })) => {
            let password = read_password()?;
            let account =
                login_service::add_user(&cli.database_url, &email, password, name, &role).await?;
            println!("created {role} {} ({})", account.email, account.id);
            Ok(())
        }
        Some(Command::Keys(KeysCommand::Rotate {
            activate_after_secs,
        })) => {
            let kid = login_service::rotate_key(
                &cli.database_url,
                cli.key_encryption_key_file.as_deref(),
                activate_after_secs,
            )
            .await?;
            println!("added signing key {kid}; it signs in {activate_after_secs} s");
            Ok(())
        }
        Some(Command::Keys(KeysCommand::Rewrap {
            new_key_encryption_key_file,
        })) => {
            let count = login_service::rewrap_keys(
                &cli.database_url,
                cli.key_encryption_key_file.as_deref(),
                &new_key_encryption_key_file,
            )
            .await?;
            println!(
                "re-encrypted {count} signing keys under {}; start every instance with \
                 --key-encryption-key-file {}",
                new_key_encryption_key_file.display(),
                new_key_encryption_key_file.display()
            );
            Ok(())
        }
    }
}

async fn serve(
    database_url: String,
    key_encryption_key_file: Option<PathBuf>,
    args: ServeArgs,
) -> Result<(), BoxError> {
    let issuer = args
        .issuer
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let mut config = Config::new(database_url, issuer);
    config.audience = args.audience;
    config.access_token_ttl = Duration::from_secs(args.access_token_ttl_secs);
    config.refresh_token_ttl = Duration::from_secs(args.refresh_token_ttl_secs);
    config.session_max_lifetime = Duration::from_secs(args.session_max_lifetime_secs);
    config.key_reload_interval = Duration::from_secs(args.key_reload_secs.max(1));
    config.throttle.account_failures = args.login_failures_per_account;
    config.throttle.address_failures = args.login_failures_per_address;
    config.throttle.device_failures = args.login_failures_per_device;
    config.throttle.registrations_per_address = args.registrations_per_address;
    config.hashing_tick =
        (args.hashing_tick_us > 0).then(|| Duration::from_micros(args.hashing_tick_us.max(100)));
    config.trusted_proxies = args.trusted_proxies;
    config.registration = !args.no_register;
    config.docs = !args.no_docs;
    config.key_encryption_key_file = key_encryption_key_file;
    config.redis_url = args.redis_url.filter(|url| !url.is_empty());
    config.redis_key_prefix = args.redis_key_prefix;
    config.dpop_nonce_rotation =
        (args.dpop_nonce_secs > 0).then(|| Duration::from_secs(args.dpop_nonce_secs));

    // Installed before the app is built, so nothing it records is lost.
    let metrics = match args.metrics_listen {
        Some(address) => Some((Metrics::install()?, address)),
        None => None,
    };
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let metrics = match metrics {
        Some((metrics, address)) => Some(serve_metrics(metrics, address, &app).await?),
        None => None,
    };
    tracing::info!(
        address = %listener.local_addr()?,
        docs = !args.no_docs,
        "login-service listening"
    );
    app.serve(listener, shutdown_signal()).await?;
    // Scrapes are answered until the last request is finished.
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves `/metrics` on `address` in the background, until aborted.
async fn serve_metrics(
    metrics: Metrics,
    address: SocketAddr,
    app: &App,
) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    let serving = metrics.serve(listener, app.hasher().clone(), std::future::pending());
    Ok(tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    }))
}

/// One line from stdin, without its line ending; nothing else is trimmed
/// because spaces are valid password characters.
fn read_password() -> Result<String, BoxError> {
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        return Err("expected the password on standard input".into());
    }
    Ok(password)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
