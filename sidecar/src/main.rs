//! `ferry-proxy`: Ferry's data plane binary.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ferry_proxy::gateway::{self, ConfigSource, GatewaySettings};
use ferry_proxy::identity::{IdentitySettings, IdentitySettingsError};
use ferry_proxy::server::ServerParams;
use tracing_subscriber::EnvFilter;

/// Ferry's proxy.
#[derive(Debug, Parser)]
#[command(name = "ferry-proxy", version, about, subcommand_negates_reqs = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// What the proxy serves.
    #[arg(long, value_enum, env = "FERRY_MODE", required = true)]
    mode: Option<Mode>,
    /// Directory of Gateway API YAML files (gateway mode), watched for
    /// changes.
    #[arg(long, env = "FERRY_CONFIG", conflicts_with = "discovery")]
    config: Option<PathBuf>,
    /// ferry-control's discovery address (gateway mode, with `--gateway`):
    /// serve the Gateway's view streamed from there instead of files.
    #[arg(long, env = "FERRY_DISCOVERY", requires = "gateway")]
    discovery: Option<String>,
    /// Address the listeners bind to.
    #[arg(long, env = "FERRY_BIND", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Address of the admin server (/live, /ready, /config, /metrics).
    #[arg(long, env = "FERRY_ADMIN", default_value = "127.0.0.1:4191")]
    admin: SocketAddr,
    /// Serve only this Gateway (NAMESPACE/NAME); by default every Gateway
    /// of a Ferry GatewayClass.
    #[arg(long, env = "FERRY_GATEWAY", value_parser = parse_gateway)]
    gateway: Option<(String, String)>,
    /// Threads that serve traffic. Default: 1 in sidecar mode (a sidecar
    /// shares its pod's CPU with the app, and one thread answers fastest:
    /// no hand-offs between threads), every CPU in gateway mode. The
    /// injector sets it from the proxy's CPU limit when there is one.
    #[arg(long, env = "FERRY_PROXY_CORES")]
    cores: Option<NonZeroUsize>,
    /// How long the proxy serves on after SIGTERM, while its pod's callers
    /// stop sending to it (`0s` stops at once).
    #[arg(long, env = "FERRY_DRAIN", default_value = "5s", value_parser = ferry_core::flags::parse_duration)]
    drain: std::time::Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Serve Gateway listeners.
    Gateway,
    /// Beside a meshed app (configured by the injector's FERRY_*
    /// variables): outbound calls routed by their Service's routes over
    /// mTLS, found on demand at FERRY_DISCOVERY_ADDR (others forwarded
    /// unchanged); inbound mTLS terminated for the app; admin and app
    /// probes.
    Sidecar,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the iptables rules that redirect the pod's TCP to the proxy
    /// (the init container).
    Init(ferry_proxy::init::InitArgs),
    /// Wait until the local proxy is ready (a classic sidecar's postStart).
    Await(ferry_proxy::await_ready::AwaitArgs),
}

fn parse_gateway(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {value:?}")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = match (args.cores, args.command.is_some(), args.mode) {
        (Some(cores), _, _) => cores.get(),
        // `init` and `await` are short commands; a sidecar gets one
        // thread unless told otherwise.
        (None, true, _) | (None, false, Some(Mode::Sidecar)) => 1,
        (None, false, _) => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
    };
    let runtime = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()
    }
    .context("failed to start the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match (args.command, args.mode) {
        (Some(Command::Init(init)), _) => {
            Ok(ferry_proxy::init::run(&init, &mut std::io::stdout())?)
        }
        (Some(Command::Await(wait)), _) => Ok(ferry_proxy::await_ready::run(&wait).await?),
        (None, Some(Mode::Sidecar)) => {
            let mut settings =
                ferry_proxy::sidecar::SidecarSettings::from_env(std::env::vars(), args.admin)?;
            settings.drain = args.drain;
            // Without the identity variables (no CA to ask) the proxy holds
            // no certificate: meshed endpoints are refused, never dialled in
            // plaintext.
            let credentials = match IdentitySettings::from_env(std::env::vars()) {
                Ok(identity) => ferry_proxy::identity::spawn(identity),
                Err(IdentitySettingsError::Missing(name)) => {
                    tracing::warn!(
                        missing = name,
                        "No workload identity: calls to meshed endpoints will fail"
                    );
                    tokio::sync::watch::channel(None).1
                }
                Err(error) => return Err(error.into()),
            };
            ferry_proxy::sidecar::run(settings, credentials).await
        }
        (None, None) => anyhow::bail!("--mode is required"),
        (None, Some(Mode::Gateway)) => {
            // The CA is at FERRY_IDENTITY_ADDR, else at the discovery address.
            let ca_fallback = args
                .discovery
                .clone()
                .map(|addr| ("FERRY_DISCOVERY_ADDR".to_owned(), addr));
            let source = match (args.config, args.discovery) {
                (Some(dir), None) => ConfigSource::Files(dir),
                (None, Some(addr)) => {
                    let (namespace, name) = args
                        .gateway
                        .clone()
                        .context("--discovery needs --gateway NAMESPACE/NAME")?;
                    ConfigSource::Discovery {
                        addr,
                        namespace,
                        name,
                    }
                }
                _ => anyhow::bail!("gateway mode needs one of --config DIR or --discovery ADDR"),
            };
            let mut settings = GatewaySettings::new(source, args.bind, args.admin);
            settings.drain = args.drain;
            // Limits on clients: FERRY_HEADER_READ_TIMEOUT, FERRY_BODY_TIMEOUT…
            let vars = std::env::vars().collect();
            settings.server = ServerParams::from_env(&vars, ServerParams::default())?;
            // With the identity variables, the gateway reaches meshed
            // endpoints over mTLS as a sidecar does; without them, plainly.
            let vars = ca_fallback.into_iter().chain(std::env::vars());
            settings.credentials = match IdentitySettings::from_env(vars) {
                Ok(identity) => Some(ferry_proxy::identity::spawn(identity)),
                Err(IdentitySettingsError::Missing(name)) => {
                    tracing::debug!(
                        missing = name,
                        "No workload identity: endpoints are called plainly"
                    );
                    None
                }
                Err(error) => return Err(error.into()),
            };
            let compiler = ferry_proxy::gateway::CoreCompiler::new(args.gateway);
            gateway::run(settings, compiler).await
        }
    }
}
