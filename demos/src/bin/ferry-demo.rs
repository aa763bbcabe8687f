//! `ferry-demo [SCENARIO]`: runs one of the standalone demos in `demos/`
//! until Ctrl-C, or lists them.

use clap::Parser;
use ferry_demo::{Demo, RunningDemo, proxy_binary};
use tokio::signal::unix::{SignalKind, signal};

/// Runs a Ferry demo on this machine: echo backends on loopback, the
/// gateway from the scenario's YAML files, and curl lines to try.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Scenario folder under demos/; without it, the scenarios are listed.
    scenario: Option<String>,
    /// Print the scenario for a cluster (`| kubectl apply -f -`) instead of
    /// running it: its manifests plus echo Deployments and Services.
    #[arg(long)]
    cluster: bool,
    /// The echo image for `--cluster` (built from the `ferry-echo` binary).
    #[arg(long, default_value = concat!("localhost/ferry/echo:", env!("CARGO_PKG_VERSION")))]
    image: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = Demo::root();
    let Some(name) = args.scenario else {
        for name in Demo::list(&root)? {
            let demo = Demo::load(&root, &name)?;
            println!("{name:<24} {}", demo.spec.title);
        }
        return Ok(());
    };
    let demo = Demo::load(&root, &name)?;
    if args.cluster {
        print!("{}", ferry_demo::cluster::render(&demo, &args.image)?);
        return Ok(());
    }
    let running = RunningDemo::start(&demo, &proxy_binary()?).await?;
    println!("{}: {}", demo.name, demo.spec.title);
    for backend in &running.backends {
        println!("  backend {:<24} {}", backend.name(), backend.addr());
    }
    println!("  gateway admin           http://{}/config", running.admin);
    println!("  config (edit live)      {}", running.config_dir.display());
    println!("\nTry:");
    for line in running.try_lines() {
        println!("  {line}");
    }
    println!("\nCtrl-C stops the demo.");
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    // Dropping the demo stops the gateway and the backends.
    drop(running);
    Ok(())
}
