//! Command line, with kubectl's habits (`--kubeconfig`, `--context`, `-n`,
//! `-A`, `-l`, `--request-timeout`, `-o`, `--no-headers`, `--color`).

use std::path::PathBuf;
use std::time::Duration;

#[cfg(test)]
use clap::CommandFactory as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::status::ParentFilter;
use crate::table::ColorChoice;

/// Why Gateway API traffic goes where it goes: per-parent status, backend
/// shares, attachment analysis, offline checks.
#[derive(Debug, Parser)]
#[command(name = "kubectl-gateway", bin_name = "kubectl gateway", version, about)]
pub struct Cli {
    /// Cluster access and output options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
    /// Timeout of each request to the server, e.g. 5s, 1m (0: none).
    #[arg(long, global = true, value_parser = parse_timeout, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Colour: auto (terminals without NO_COLOR), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "FERRY_COLOR"
    )]
    pub color: ColorChoice,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One row per (route, parent): accepted, resolved, reason, backend shares.
    Status(StatusArgs),
    /// One route, Gateway or Service in depth, with an analysis.
    Describe(DescribeArgs),
    /// GatewayClass → Gateway / Service → route → rule → backend.
    Tree(TreeArgs),
    /// Find problems in files or on the cluster; exit 79 when there are any.
    Check(CheckArgs),
    /// Add the Ferry sidecar to Pods and workloads in YAML, offline.
    Inject(InjectArgs),
    /// Print the version.
    Version,
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: Shell,
    },
}

/// `-o` of `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// The table.
    Table,
    /// The table with hostnames, controller, generations, parent Programmed.
    Wide,
    /// `ferry.dev/v1 StatusList` as JSON.
    Json,
    /// `ferry.dev/v1 StatusList` as YAML.
    Yaml,
}

/// `-o` of `describe` and `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    /// Text for people.
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `-o` of `tree`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TreeFormat {
    /// An indented tree.
    Text,
    /// Graphviz dot.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// JSON.
    Json,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Route kinds or routes: httproute, grpcroute/NAME, ... (all kinds when empty).
    #[arg(value_name = "KIND[/NAME]")]
    pub targets: Vec<String>,
    /// Only rows of this parent: gateway/NS/NAME or service/NS/NAME.
    #[arg(long, value_name = "KIND/NS/NAME")]
    pub parent: Option<ParentFilter>,
    /// Label selector for routes.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Keep watching: print the table again whenever it changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: StatusFormat,
    /// Print rows without the header line.
    #[arg(long)]
    pub no_headers: bool,
}

/// `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// httproute/NAME, grpcroute/NAME, gateway/NAME or service/NAME.
    #[arg(value_name = "KIND/NAME")]
    pub target: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: DocFormat,
}

/// `tree`.
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// gatewayclass/NAME, gateway/NAME, service/NAME, httproute/NAME (all when unset).
    #[arg(value_name = "KIND[/NAME]")]
    pub target: Option<String>,
    /// Label selector for routes.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: TreeFormat,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// YAML files or directories of them to check offline (`-` for stdin);
    /// the cluster when none.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Label selector for routes (cluster only).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: DocFormat,
}

/// `inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// YAML file of Pods, workloads or Lists (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Proxy image (default: the proxy of this plugin's version).
    #[arg(long, env = "FERRY_PROXY_IMAGE")]
    pub proxy_image: Option<String>,
    /// Sidecar style: native (Kubernetes 1.29+) or classic.
    #[arg(long, value_enum, default_value = "native")]
    pub sidecar: SidecarStyle,
}

/// `--sidecar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SidecarStyle {
    /// An init container with `restartPolicy: Always`.
    Native,
    /// The first regular container, held ready by a postStart hook.
    Classic,
}

/// A kubectl `--request-timeout`: `0`, a number of seconds, or a number
/// with `ms`, `s`, `m` or `h`.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 1m, 0"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_like_kubectl() {
        assert_eq!(parse_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("5d").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kubectl-gateway",
            "status",
            "-A",
            "httproute/reviews",
            "-o",
            "wide",
            "--parent",
            "svc/shop/reviews",
            "--request-timeout",
            "5s",
        ])
        .expect("parses");
        assert!(cli.global.all_namespaces);
        assert_eq!(cli.global.request_timeout, Some(Duration::from_secs(5)));
    }
}
