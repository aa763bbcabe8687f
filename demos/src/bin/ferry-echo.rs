//! `ferry-echo`: the HTTP echo backend of the demos and end-to-end tests,
//! and the client tests run inside pods.
//!
//! * `ferry-echo [serve] [--name N] [--namespace NS] [--listen ADDR,...]`
//!   answers every request with its name and what it received (text, or
//!   JSON for `Accept: application/json`). In a pod the name and namespace
//!   come from `POD_NAME`/`HOSTNAME` and `POD_NAMESPACE`. On SIGTERM or
//!   Ctrl-C it serves on for `--drain` (as ferry-proxy does: the pod's
//!   callers are still being told it is gone), then stops accepting, lets
//!   open connections finish their request (at most `--grace`) and exits 0;
//!   a second signal stops it at once.
//! * `ferry-echo call URL [--count N | --duration D] [--rate R/s]
//!   [--header K:V]... [--concurrency C] [--timeout T]` sends GET requests
//!   and prints one JSON summary line (`ferry_demo::call::Tally`); it exits
//!   0 when every request got a 2xx answer, 1 otherwise.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferry_demo::call::{self, CallSpec, Limit, Rate, Target, parse_duration, parse_header};
use ferry_demo::echo::{EchoIdentity, EchoServer};
use http::{HeaderName, HeaderValue};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// An HTTP echo server (the default command) and a client for tests.
#[derive(Parser)]
#[command(name = "ferry-echo", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Answer every HTTP request with this server's name and the request
    /// (the default when no command is given).
    Serve(ServeArgs),
    /// Send GET requests to URL and print one JSON summary line.
    Call(CallArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Name to answer with (`Hostname:` line, `x-echo-name` header);
    /// default `POD_NAME`, else `HOSTNAME`.
    #[arg(long, env = "FERRY_ECHO_NAME")]
    name: Option<String>,
    /// Namespace to answer with; default `POD_NAMESPACE`.
    #[arg(long, env = "FERRY_ECHO_NAMESPACE")]
    namespace: Option<String>,
    /// Addresses to listen on.
    #[arg(
        long,
        env = "FERRY_ECHO_LISTEN",
        value_delimiter = ',',
        default_value = "0.0.0.0:8080"
    )]
    listen: Vec<SocketAddr>,
    /// After SIGTERM, how long to serve on (`0s`: stop at once), so that
    /// deleting the pod fails no call while its callers let go of it.
    #[arg(long, env = "FERRY_ECHO_DRAIN", value_parser = parse_duration, default_value = "5s")]
    drain: Duration,
    /// Then, how long open connections may take to finish their request.
    #[arg(long, env = "FERRY_ECHO_GRACE", value_parser = parse_duration, default_value = "5s")]
    grace: Duration,
}

#[derive(Args)]
struct CallArgs {
    /// `http://host[:port]/path?query`.
    url: Target,
    /// Number of requests (default 1).
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Send for this long (`30s`, `2m`) instead of a count.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Pace requests at this rate over all connections (`50/s`, `600/m`).
    #[arg(long)]
    rate: Option<Rate>,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Keep-alive connections used in parallel.
    #[arg(long, default_value = "1")]
    concurrency: NonZeroUsize,
    /// Longest time one request may take, connecting included.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Call(args)) => call(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let identity = EchoIdentity::resolve(args.name, args.namespace, |key| {
        std::env::var(key).ok().or_else(|| {
            // Not every runtime sets HOSTNAME; the kernel knows it anyway.
            (key == "HOSTNAME")
                .then(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .flatten()
        })
    });
    let mut signals = StopSignals::new()?;
    let mut servers = Vec::new();
    for addr in args.listen {
        let server = EchoServer::start_as(identity.clone(), addr).await?;
        println!("echo {} listening on {}", server.name(), server.addr());
        servers.push(server);
    }
    let signal_name = signals.recv().await;
    println!(
        "echo {}: {signal_name}, draining for {:?} (a second signal stops at once)",
        identity.name, args.drain
    );
    let grace = tokio::select! {
        () = tokio::time::sleep(args.drain) => args.grace,
        again = signals.recv() => {
            println!("echo {}: {again}, stopping now", identity.name);
            Duration::ZERO
        }
    };
    for server in servers {
        server.shutdown(grace).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    let limit = match (args.count, args.duration) {
        (_, Some(duration)) => Limit::Duration(duration),
        (count, None) => Limit::Count(count.unwrap_or(1)),
    };
    let spec = CallSpec {
        target: args.url,
        limit,
        rate: args.rate,
        headers: args.headers,
        concurrency: args.concurrency,
        timeout: args.timeout,
    };
    let mut signals = StopSignals::new()?;
    let tally = call::run_until(spec, async {
        signals.recv().await;
    })
    .await;
    println!("{}", serde_json::to_string(&tally)?);
    Ok(if tally.failed == 0 && tally.total > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SIGTERM (what Kubernetes sends) and SIGINT, caught from the start so
/// that neither kills the process before it has cleaned up.
struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

// === impl StopSignals ===

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either; names which.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
