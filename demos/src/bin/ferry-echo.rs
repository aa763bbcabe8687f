//! `ferry-echo --name NAME --listen ADDR...`: an HTTP echo backend for
//! demos and end-to-end tests.

use std::net::SocketAddr;

use clap::Parser;
use ferry_demo::echo::EchoServer;

/// Answers every HTTP request with its name and the request it saw.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Name to answer with (`Hostname:` line and `x-echo-name` header).
    #[arg(long, env = "FERRY_ECHO_NAME")]
    name: String,
    /// Addresses to listen on.
    #[arg(
        long,
        env = "FERRY_ECHO_LISTEN",
        value_delimiter = ',',
        required = true
    )]
    listen: Vec<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut servers = Vec::new();
    for addr in args.listen {
        let server = EchoServer::start(&args.name, addr).await?;
        println!("echo {} listening on {}", server.name(), server.addr());
        servers.push(server);
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
