//! `ferry-proxy await`: the classic sidecar's `postStart` hook. The kubelet
//! starts the app's containers only once it returns, so it polls
//! `http://127.0.0.1:<admin-port>/ready` until it answers 200 (exit 0) or
//! the timeout passes (exit non-zero), per the ferry-injector crate doc.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use ferry_core::flags::parse_duration;

/// Flags of `ferry-proxy await`.
#[derive(Clone, Debug, clap::Args)]
pub struct AwaitArgs {
    /// Port of the proxy's admin server on 127.0.0.1.
    #[arg(long, default_value_t = 4191)]
    pub admin_port: u16,
    /// How long to wait: `30s`, `1500ms`, `2m` or plain seconds.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time between two checks.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub interval: Duration,
}

/// The proxy did not become ready.
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to see the proxy ready at http://127.0.0.1:{port}/ready within {timeout:?}: {last}"
)]
pub struct AwaitError {
    /// The admin port.
    pub port: u16,
    /// The limit.
    pub timeout: Duration,
    /// What the last check saw.
    pub last: String,
}

/// Polls `/ready` until it answers 200 or `args.timeout` passes.
pub async fn run(args: &AwaitArgs) -> Result<(), AwaitError> {
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut last = String::from("not checked yet");
    loop {
        let check = tokio::time::timeout(
            args.interval.max(Duration::from_secs(1)),
            ready(args.admin_port),
        );
        match tokio::time::timeout_at(deadline, check).await {
            Err(_) => break,
            Ok(Ok(Ok(StatusCode::OK))) => return Ok(()),
            Ok(Ok(Ok(status))) => last = format!("answered {status}"),
            Ok(Ok(Err(error))) => last = error.to_string(),
            Ok(Err(_)) => last = "no answer".into(),
        }
        if tokio::time::Instant::now() + args.interval >= deadline {
            break;
        }
        tokio::time::sleep(args.interval).await;
    }
    Err(AwaitError {
        port: args.admin_port,
        timeout: args.timeout,
        last,
    })
}

async fn ready(port: u16) -> Result<StatusCode, crate::body::BoxError> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = Request::get("/ready")
        .header(http::header::HOST, format!("127.0.0.1:{port}"))
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(req).await?.status())
}
