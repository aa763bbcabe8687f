//! End to end, with real processes in network namespaces: two pods linked by
//! a veth pair (10.200.0.1 client, 10.200.0.2 server, inside the test's own
//! namespaces only), `ferry-proxy init` installing real iptables rules in
//! both, `ferry-proxy --mode sidecar` running as UID 2102 in both, and an
//! app in the server pod (this test binary re-run as `app_server`) that
//! answers with the port it serves and the peer address it sees.
//!
//! What it proves: the app's outbound TCP is redirected to the client
//! sidecar, which finds the original destination (SO_ORIGINAL_DST) and
//! forwards to it (its metrics name the target); inbound TCP to the app's
//! port lands on the server sidecar's 4143 first (the app sees a loopback
//! peer); the proxy's own UID is not redirected (no loop, and a connection
//! made as UID 2102 is not counted); excluded ports bypass both sidecars; the
//! admin port is reachable from outside; app probes are served on it; rules
//! are idempotent; the namespaces are gone afterwards. A second test does
//! the same over IPv6 (ip6tables rules when the pod has a global IPv6
//! address, ULA addresses inside the namespaces).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_netns::{Pod, link, namespaces, unavailable};

const APP_ENV: &str = "FERRY_SIDECAR_E2E_APP";
/// `FERRY_LOG` for the sidecars, e.g. `ferry_proxy=debug` to see every
/// forwarded connection with its original destination.
const LOG_ENV: &str = "FERRY_TEST_PROXY_LOG";
const PROXY: &str = env!("CARGO_BIN_EXE_ferry-proxy");
const PROXY_UID: u32 = 2102;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

/// Not a test on its own: the app the e2e test runs in the server pod. On
/// each port of `FERRY_SIDECAR_E2E_APP` it answers HTTP/1.1: `/fail` with
/// 500, anything else with 200 and `app port=<port> peer=<peer ip>`.
#[test]
fn app_server() -> Result<()> {
    let Ok(ports) = std::env::var(APP_ENV) else {
        return Ok(());
    };
    let mut threads = Vec::new();
    for port in ports.split(',') {
        // Dual-stack where the pod has IPv6.
        let listener = TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")))?;
        threads.push(std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn);
            }
        }));
    }
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

fn answer(mut conn: std::net::TcpStream) -> Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let (status, body) = if path == "/fail" {
        ("500 Internal Server Error", "failing\n".to_string())
    } else {
        let port = conn.local_addr()?.port();
        let peer = conn.peer_addr()?.ip().to_canonical();
        ("200 OK", format!("app port={port} peer={peer}\n"))
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// `curl` inside `pod` (as `uid` if given): the status code and body.
fn curl(pod: &Pod, uid: Option<u32>, url: &str) -> Result<(u16, String)> {
    let mut command = match uid {
        Some(uid) => pod.command_as(uid, "curl"),
        None => pod.command("curl"),
    };
    let out = command
        .args(["-s", "-g", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .context("failed to run curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

fn wait_for(pod: &Pod, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if curl(pod, None, url)?.0 == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} in {} never answered 200", pod.name());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of counter `name` on the line with all of `labels`, 0 if none.
fn counter(pod: &Pod, name: &str, labels: &[&str]) -> Result<u64> {
    let (_, metrics) = curl(pod, None, "http://127.0.0.1:4191/metrics")?;
    Ok(metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(" ").next()?.parse::<u64>().ok())
        .sum())
}

/// A client and a server pod joined by a veth pair, with the app serving
/// `ports` in the server.
fn pods_with_app(client: &str, server: &str, ports: &str) -> Result<(Pod, Pod)> {
    let client = Pod::new(client)?;
    let server = Pod::new(server)?;
    link(&client, CLIENT, &server, SERVER, 24)?;
    let mut app = server.command(std::env::current_exe()?.to_str().context("exe path")?);
    app.args(["--exact", "app_server", "--nocapture"])
        .env(APP_ENV, ports);
    app.stdout(Stdio::null());
    server.spawn(app)?;
    wait_for(&server, "http://127.0.0.1:7000/")?;
    Ok((client, server))
}

fn init(pod: &Pod, extra: &[&str]) -> Result<String> {
    let mut args = vec![
        PROXY,
        "init",
        "--inbound-port",
        "4143",
        "--outbound-port",
        "4140",
        "--proxy-uid",
        "2102",
        "--exclude-inbound-ports",
        "4191,7001",
        "--exclude-outbound-ports",
        "7001",
    ];
    args.extend(extra);
    let out = pod.run(&args)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn start_sidecar(pod: &Pod, app_probes: &str) -> Result<()> {
    start_sidecar_with(pod, app_probes, &[])
}

/// [`start_sidecar`] with more environment variables.
fn start_sidecar_with(pod: &Pod, app_probes: &str, env: &[(&str, &str)]) -> Result<()> {
    let mut sidecar = pod.command_as(PROXY_UID, PROXY);
    sidecar
        .args(["--mode", "sidecar"])
        .envs(env.iter().copied())
        .env("FERRY_ADMIN_ADDR", "0.0.0.0:4191")
        .env("FERRY_INBOUND_PORT", "4143")
        .env("FERRY_OUTBOUND_PORT", "4140")
        .env("FERRY_APP_PROBES", app_probes)
        // Quiet unless asked: the metrics carry the proof.
        .env(
            "FERRY_LOG",
            std::env::var(LOG_ENV).unwrap_or_else(|_| "warn".into()),
        );
    pod.spawn(sidecar)?;
    wait_for(pod, "http://127.0.0.1:4191/ready")
}

#[test]
fn sidecars_intercept_and_forward_between_pods() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let (client, server) = pods_with_app("client", "server", "7000,7001")?;
    let names = [client.name().to_owned(), server.name().to_owned()];

    // Real iptables, twice: the second run rebuilds the same rules, and
    // rules of others in the nat table (a CNI's, say) stay.
    let foreign = "-A OUTPUT -p udp -m udp --dport 53 -j CNI_DNS";
    client.run(&["iptables", "-t", "nat", "-N", "CNI_DNS"])?;
    client.run(&[
        "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "CNI_DNS",
    ])?;
    let printed = init(&client, &[])?;
    assert!(
        printed.contains("-A OUTPUT -p tcp -j FERRY_OUTBOUND\n"),
        "{printed}"
    );
    // Link-local IPv6 only: no ip6tables rules.
    assert!(
        printed.contains("# no IPv6 address of global scope: IPv4 rules only\n"),
        "{printed}"
    );
    assert!(!printed.contains("# ip6tables rules"), "{printed}");
    let saved6 = client.run(&["ip6tables-save", "-t", "nat"])?;
    let saved6 = String::from_utf8_lossy(&saved6.stdout);
    assert!(!saved6.contains("FERRY_"), "{saved6}");
    init(&client, &[])?;
    init(&server, &[])?;
    let saved = client.run(&["iptables-save", "-t", "nat"])?;
    let saved = String::from_utf8_lossy(&saved.stdout);
    for jump in [
        "-A OUTPUT -p tcp -j FERRY_OUTBOUND",
        "-A PREROUTING -p tcp -j FERRY_INBOUND",
    ] {
        assert_eq!(saved.lines().filter(|l| *l == jump).count(), 1, "{saved}");
    }
    assert_eq!(saved.matches("--to-ports 4140").count(), 1, "{saved}");
    assert_eq!(
        saved.lines().filter(|l| *l == foreign).count(),
        1,
        "{saved}"
    );

    start_sidecar(&client, "{}")?;
    let probes = r#"{
        "/app-probe/app/readiness": {"port": 7000, "path": "/healthz", "scheme": "HTTP"},
        "/app-probe/app/liveness": {"port": 7000, "path": "/fail", "scheme": "HTTP",
                                    "httpHeaders": [{"name": "x-probe", "value": "1"}]},
        "/app-probe/gone/startup": {"port": 7999, "path": "/", "scheme": "HTTP"}
    }"#;
    start_sidecar(&server, probes)?;

    let outbound_7000 = ["direction=\"Outbound\"", "target_addr=\"10.200.0.2:7000\""];
    let inbound_7000 = ["direction=\"Inbound\"", "target_addr=\"10.200.0.2:7000\""];

    // Meshed port: client app -> client sidecar (4140) -> server sidecar
    // (4143) -> app on loopback.
    let (code, body) = curl(&client, None, "http://10.200.0.2:7000/hello")?;
    assert_eq!(
        (code, body.as_str()),
        (200, "app port=7000 peer=127.0.0.1\n")
    );
    assert_eq!(counter(&client, "tcp_open_total", &outbound_7000)?, 1);
    assert_eq!(counter(&server, "tcp_open_total", &inbound_7000)?, 1);
    assert!(counter(&client, "tcp_write_bytes_total", &outbound_7000)? > 0);

    // The proxy's UID is not redirected on the client; the server still
    // intercepts it on the way in.
    let (code, body) = curl(&client, Some(PROXY_UID), "http://10.200.0.2:7000/")?;
    assert_eq!(
        (code, body.as_str()),
        (200, "app port=7000 peer=127.0.0.1\n")
    );
    assert_eq!(counter(&client, "tcp_open_total", &outbound_7000)?, 1);
    assert_eq!(counter(&server, "tcp_open_total", &inbound_7000)?, 2);

    // Excluded port, both ways: the app sees the client pod's address.
    let (code, body) = curl(&client, None, "http://10.200.0.2:7001/")?;
    assert_eq!(
        (code, body.as_str()),
        (200, "app port=7001 peer=10.200.0.1\n")
    );
    assert_eq!(counter(&client, "tcp_open_total", &["10.200.0.2:7001"])?, 0);
    assert_eq!(counter(&server, "tcp_open_total", &["10.200.0.2:7001"])?, 0);

    // The admin port is excluded from inbound interception: the kubelet's
    // view. The app's probes answer with the app's status.
    let admin = |path: &str| curl(&client, None, &format!("http://10.200.0.2:4191{path}"));
    assert_eq!(admin("/live")?.0, 200);
    assert_eq!(counter(&server, "tcp_open_total", &["10.200.0.2:4191"])?, 0);
    assert_eq!(admin("/app-probe/app/readiness")?.0, 200);
    assert_eq!(admin("/app-probe/app/liveness")?.0, 500);
    assert_eq!(admin("/app-probe/gone/startup")?.0, 503);
    assert_eq!(admin("/app-probe/other/readiness")?.0, 404);

    // A port nobody serves: the server's sidecar counts a connect error
    // and closes the connection.
    let (code, _) = curl(&client, None, "http://10.200.0.2:7002/")?;
    assert_eq!(code, 0);
    let errors = counter(&server, "tcp_connect_errors_total", &["10.200.0.2:7002"])?;
    assert_eq!(errors, 1);

    // `await` sees the sidecar ready; with nothing listening it gives up.
    let ready = client
        .command(PROXY)
        .args(["await", "--timeout", "5s"])
        .status()?;
    assert!(ready.success());
    let gone = client
        .command(PROXY)
        .args(["await", "--admin-port", "4999", "--timeout", "500ms"])
        .env("RUST_BACKTRACE", "0")
        .output()?;
    assert!(!gone.status.success());
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(stderr.contains("failed to see the proxy ready"), "{stderr}");

    drop((client, server));
    let left: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces outlived the test: {left:?}");
    Ok(())
}

/// The same path over IPv6 (ip6tables rules from `init`, detected or
/// asked for with `--ipv6`; the sidecar's IPv6 listeners;
/// IP6T_SO_ORIGINAL_DST), with ULA addresses inside the test's namespaces.
#[test]
fn ipv6_is_intercepted_when_the_pod_has_it() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let (client, server) = pods_with_app("client6", "server6", "7000")?;
    for (pod, addr) in [(&client, "fd00:200::1/64"), (&server, "fd00:200::2/64")] {
        pod.run(&["ip", "-6", "addr", "add", addr, "dev", "eth0", "nodad"])?;
    }
    wait_for(&server, "http://[::1]:7000/")?;
    // The client's init finds the ULA address by itself; the server's is
    // told.
    let printed = init(&client, &[])?;
    assert!(
        printed.contains("# IPv6 address of global scope on eth0: ip6tables rules too\n"),
        "{printed}"
    );
    assert!(printed.contains("# ip6tables rules\n"), "{printed}");
    init(&server, &["--ipv6"])?;
    let saved = client.run(&["ip6tables-save", "-t", "nat"])?;
    let saved = String::from_utf8_lossy(&saved.stdout);
    assert!(
        saved.contains("-A OUTPUT -p tcp -j FERRY_OUTBOUND\n"),
        "{saved}"
    );
    start_sidecar(&client, "{}")?;
    start_sidecar(&server, "{}")?;

    let (code, body) = curl(&client, None, "http://[fd00:200::2]:7000/")?;
    assert_eq!((code, body.as_str()), (200, "app port=7000 peer=::1\n"));
    let target = "target_addr=\"[fd00:200::2]:7000\"";
    let outbound = ["direction=\"Outbound\"", target];
    let inbound = ["direction=\"Inbound\"", target];
    assert_eq!(counter(&client, "tcp_open_total", &outbound)?, 1);
    assert_eq!(counter(&server, "tcp_open_total", &inbound)?, 1);
    // IPv4 still works beside it.
    let (code, body) = curl(&client, None, "http://10.200.0.2:7000/")?;
    assert_eq!(
        (code, body.as_str()),
        (200, "app port=7000 peer=127.0.0.1\n")
    );
    Ok(())
}

/// `FERRY_INBOUND_POLICY=strict` on the server: plaintext and the app's own
/// TLS from outside the mesh are refused (and counted) before reaching the
/// app; excluded ports and the admin port are not intercepted at all.
#[test]
fn strict_mode_refuses_what_is_not_mesh_mtls() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let (client, server) = pods_with_app("strictc", "stricts", "7000,7001")?;
    init(&server, &[])?;
    start_sidecar_with(&server, "{}", &[("FERRY_INBOUND_POLICY", "strict")])?;

    let refused = ["reason=\"NotMesh\""];
    assert_eq!(curl(&client, None, "http://10.200.0.2:7000/")?.0, 0);
    assert_eq!(counter(&server, "inbound_refused_total", &refused)?, 1);
    assert_eq!(curl(&client, None, "https://10.200.0.2:7000/")?.0, 0);
    assert_eq!(counter(&server, "inbound_refused_total", &refused)?, 2);
    let kind = ["kind=\"Refused\""];
    assert_eq!(counter(&server, "inbound_connections_total", &kind)?, 2);
    assert_eq!(counter(&server, "tcp_open_total", &["10.200.0.2:7000"])?, 0);

    let (code, body) = curl(&client, None, "http://10.200.0.2:7001/")?;
    assert_eq!(
        (code, body.as_str()),
        (200, "app port=7001 peer=10.200.0.1\n")
    );
    assert_eq!(curl(&client, None, "http://10.200.0.2:4191/live")?.0, 200);
    Ok(())
}

#[test]
fn init_without_net_admin_says_so() -> Result<()> {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return Ok(());
    }
    let pod = Pod::new("noadmin")?;
    let out = pod
        .command_as(PROXY_UID, PROXY)
        .args(["init", "--proxy-uid", "2102"])
        .env("RUST_BACKTRACE", "0")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NET_ADMIN is missing"), "{stderr}");
    // Inside the pod, with no iptables on PATH.
    let missing = pod
        .command("/usr/bin/env")
        .args(["PATH=/nonexistent", "RUST_BACKTRACE=0", PROXY, "init"])
        .output()?;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("is iptables installed"), "{stderr}");
    Ok(())
}
