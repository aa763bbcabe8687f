//! Wiring: each command fetches a snapshot (cluster or files), computes its
//! view and prints it. Data goes to stdout, notes and warnings to stderr.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;
use kubectl_gateway::cli::{
    CheckArgs, Cli, Command, DescribeArgs, DocFormat, Global, InjectArgs, SidecarStyle, StatusArgs,
    StatusFormat, TreeArgs, TreeFormat,
};
use kubectl_gateway::describe::{self, Description};
use kubectl_gateway::fetch::{ConnectOptions, Connection, Scope, Want};
use kubectl_gateway::model::{Inventory, RouteKind};
use kubectl_gateway::output::{self, Items, envelope};
use kubectl_gateway::status::{self, Filter};
use kubectl_gateway::{EXIT_ISSUES, UsageError, check, files, time, tree};

/// Runs a command; returns the exit code.
pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let global = &cli.global;
    match &cli.command {
        Command::Status(args) => status_cmd(global, args).await,
        Command::Describe(args) => describe_cmd(global, args).await,
        Command::Tree(args) => tree_cmd(global, args).await,
        Command::Check(args) => check_cmd(global, args).await,
        Command::Inject(args) => inject_cmd(args),
        Command::Version => {
            println!(
                "kubectl-gateway {} (output {})",
                env!("CARGO_PKG_VERSION"),
                output::API_VERSION
            );
            Ok(0)
        }
        Command::Completion { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(
                *shell,
                &mut command,
                "kubectl-gateway",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    }
}

async fn connect(global: &Global) -> Result<Connection> {
    let options = ConnectOptions {
        kubeconfig: global.kubeconfig.clone(),
        context: global.context.clone(),
        request_timeout: global.request_timeout.filter(|t| !t.is_zero()),
    };
    Ok(Connection::connect(&options).await?)
}

fn scope(global: &Global, conn: &Connection) -> Scope {
    if global.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(
            global
                .namespace
                .clone()
                .unwrap_or_else(|| conn.default_namespace.clone()),
        )
    }
}

async fn fetch(conn: &Connection, want: &Want) -> Result<Inventory> {
    let mut notes = Vec::new();
    let inv = conn.inventory(want, &mut notes).await?;
    for note in notes {
        eprintln!("warning: {note}");
    }
    Ok(inv)
}

fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("failed to write to stdout")?;
    stdout.flush().context("failed to write to stdout")
}

async fn status_cmd(global: &Global, args: &StatusArgs) -> Result<u8> {
    let mut filter = Filter {
        parent: args.parent.clone(),
        ..Filter::default()
    };
    for target in &args.targets {
        let (kind, name) = target
            .split_once('/')
            .map_or((target.as_str(), None), |(k, n)| (k, Some(n)));
        let kind: RouteKind = kind.parse().map_err(|e| UsageError(format!("{e}")))?;
        match name {
            Some(name) => filter.names.push((kind, name.to_owned())),
            None => filter.kinds.push(kind),
        }
    }
    let mut kinds: Vec<RouteKind> = filter
        .kinds
        .iter()
        .chain(filter.names.iter().map(|(k, _)| k))
        .copied()
        .collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        kinds = RouteKind::ALL.to_vec();
    }
    let conn = connect(global).await?;
    let scope = scope(global, &conn);
    let want = Want {
        kinds,
        scope: scope.clone(),
        label_selector: args.selector.clone(),
        events_for: None,
    };
    let color = global.color.enabled();
    let mut last = String::new();
    loop {
        let inv = fetch(&conn, &want).await?;
        let rows = status::rows(&inv, &filter);
        let now = time::now();
        let text = match args.output {
            StatusFormat::Table => status::table(&rows, now).render(!args.no_headers, color),
            StatusFormat::Wide => status::wide_table(&rows, now).render(!args.no_headers, color),
            StatusFormat::Json => output::json(&envelope(
                "StatusList",
                Items {
                    items: rows.clone(),
                },
            ))?,
            StatusFormat::Yaml => output::yaml(&envelope(
                "StatusList",
                Items {
                    items: rows.clone(),
                },
            ))?,
        };
        if rows.is_empty() && matches!(args.output, StatusFormat::Table | StatusFormat::Wide) {
            if !args.watch || last.is_empty() {
                match &scope {
                    Scope::All => eprintln!("No routes found."),
                    Scope::Namespace(ns) => eprintln!("No routes found in {ns} namespace."),
                }
            }
        } else if text != last {
            if !last.is_empty() {
                print("\n")?;
            }
            print(&text)?;
        }
        if !args.watch {
            return Ok(0);
        }
        last = text;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

async fn describe_cmd(global: &Global, args: &DescribeArgs) -> Result<u8> {
    let Some((kind, name)) = args.target.split_once('/') else {
        bail!(UsageError(format!(
            "describe needs KIND/NAME, got {:?}",
            args.target
        )));
    };
    let kind = kind.to_ascii_lowercase();
    let conn = connect(global).await?;
    let ns = global
        .namespace
        .clone()
        .unwrap_or_else(|| conn.default_namespace.clone());
    let route_kind = kind.parse::<RouteKind>().ok();
    let object_kind = match (route_kind, kind.as_str()) {
        (Some(k), _) => k.as_str(),
        (None, "gateway" | "gateways" | "gw") => "Gateway",
        (None, "service" | "services" | "svc") => "Service",
        _ => bail!(UsageError(format!(
            "cannot describe {kind:?}: use httproute, grpcroute, tcproute, tlsroute, udproute, gateway or service"
        ))),
    };
    let want = Want {
        kinds: route_kind.map_or_else(|| RouteKind::ALL.to_vec(), |k| vec![k]),
        scope: if route_kind.is_some() {
            Scope::Namespace(ns.clone())
        } else {
            Scope::All
        },
        label_selector: None,
        events_for: Some((object_kind.to_owned(), ns.clone(), name.to_owned())),
    };
    let inv = fetch(&conn, &want).await?;
    let not_found = || anyhow::anyhow!("{kind} {ns}/{name} not found");
    let description = match route_kind {
        Some(k) => {
            let route = inv
                .routes
                .iter()
                .find(|r| r.kind == k && r.meta.namespace == ns && r.meta.name == name)
                .ok_or_else(not_found)?;
            Description::Route(describe::describe_route(&inv, route))
        }
        None if object_kind == "Gateway" => Description::Gateway(describe::describe_gateway(
            &inv,
            inv.gateway(&ns, name).ok_or_else(not_found)?,
        )),
        None => Description::Service(describe::describe_service(
            &inv,
            inv.service(&ns, name).ok_or_else(not_found)?,
        )),
    };
    let doc_kind = match &description {
        Description::Route(_) => "RouteDescription",
        Description::Gateway(_) => "GatewayDescription",
        Description::Service(_) => "ServiceDescription",
    };
    let text = match args.output {
        DocFormat::Text => describe::render(&description, time::now(), global.color.enabled()),
        DocFormat::Json => output::json(&envelope(doc_kind, &description))?,
        DocFormat::Yaml => output::yaml(&envelope(doc_kind, &description))?,
    };
    print(&text)?;
    Ok(0)
}

async fn tree_cmd(global: &Global, args: &TreeArgs) -> Result<u8> {
    let conn = connect(global).await?;
    let scope = scope(global, &conn);
    let mut target = tree::Target::default();
    if let Some(t) = &args.target {
        let (kind, name) = t
            .split_once('/')
            .map_or((t.as_str(), None), |(k, n)| (k, Some(n)));
        let kind = kind.to_ascii_lowercase();
        let known = matches!(
            kind.as_str(),
            "gatewayclass" | "gateway" | "service" | "svc"
        ) || kind.parse::<RouteKind>().is_ok();
        if !known {
            bail!(UsageError(format!(
                "cannot draw {kind:?}: use gatewayclass, gateway, service or a route kind"
            )));
        }
        target.kind = Some(if kind == "svc" {
            "service".to_owned()
        } else {
            kind
        });
        target.name = name.map(str::to_owned);
    }
    if let Scope::Namespace(ns) = &scope {
        target.namespace = Some(ns.clone());
    }
    let want = Want {
        kinds: RouteKind::ALL.to_vec(),
        scope,
        label_selector: args.selector.clone(),
        events_for: None,
    };
    let inv = fetch(&conn, &want).await?;
    let roots = tree::build(&inv, &target);
    let text = match args.output {
        TreeFormat::Text => tree::text(&roots),
        TreeFormat::Dot => tree::dot(&roots),
        TreeFormat::Mermaid => tree::mermaid(&roots),
        TreeFormat::Json => output::json(&envelope("Tree", serde_json::json!({ "roots": roots })))?,
    };
    print(&text)?;
    Ok(0)
}

async fn check_cmd(global: &Global, args: &CheckArgs) -> Result<u8> {
    let inv = if args.files.is_empty() {
        let conn = connect(global).await?;
        let want = Want {
            kinds: RouteKind::ALL.to_vec(),
            scope: scope(global, &conn),
            label_selector: args.selector.clone(),
            events_for: None,
        };
        fetch(&conn, &want).await?
    } else {
        let mut sources = Vec::new();
        for path in &args.files {
            sources.extend(read_sources(path)?);
        }
        files::load(&sources, global.namespace.as_deref().unwrap_or("default"))?
    };
    let issues = check::check(&inv);
    let text = match args.output {
        DocFormat::Text => check::text(&issues),
        DocFormat::Json => output::json(&envelope(
            "CheckReport",
            serde_json::json!({ "issues": issues }),
        ))?,
        DocFormat::Yaml => output::yaml(&envelope(
            "CheckReport",
            serde_json::json!({ "issues": issues }),
        ))?,
    };
    print(&text)?;
    if issues.is_empty() {
        eprintln!("No issues found ({} routes checked).", inv.routes.len());
        Ok(0)
    } else {
        eprintln!(
            "{} issue(s) found in {} routes.",
            issues.len(),
            inv.routes.len()
        );
        Ok(EXIT_ISSUES)
    }
}

fn inject_cmd(args: &InjectArgs) -> Result<u8> {
    let yaml = read_input(&args.file)?;
    let mut config = ferry_injector::InjectConfig::new(env!("CARGO_PKG_VERSION"));
    if let Some(image) = &args.proxy_image {
        config.proxy_image = image.clone();
    }
    config = config.with_sidecar_mode(match args.sidecar {
        SidecarStyle::Native => ferry_injector::SidecarMode::Native,
        SidecarStyle::Classic => ferry_injector::SidecarMode::Classic,
    });
    let injected = ferry_injector::inject_manifests(&yaml, &config)
        .with_context(|| format!("failed to inject {}", args.file.display()))?;
    print(&injected)?;
    Ok(0)
}

/// Every manifest `path` names, as (name, text): a file, stdin for `-`, or
/// a directory's `.yaml`, `.yml` and `.json` files in name order (not
/// recursive, as kubectl's `-f DIR`).
fn read_sources(path: &Path) -> Result<Vec<(String, String)>> {
    if !path.is_dir() {
        return Ok(vec![(path.display().to_string(), read_input(path)?)]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("failed to list {}", path.display()))?
    {
        let file = entry
            .with_context(|| format!("failed to list {}", path.display()))?
            .path();
        let manifest = file
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
        if manifest && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    files
        .iter()
        .map(|file| Ok((file.display().to_string(), read_input(file)?)))
        .collect()
}

/// A file's text, or stdin's for `-`.
fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
}
