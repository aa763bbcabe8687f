//! The processes the mesh test runs inside its pods, each this test binary
//! re-run as one `#[test]` that does nothing unless its variable is set
//! (see `main.rs`): an HTTP app, a line-echo app, a load client, and the
//! relay that lets sidecars reach ferry-control.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// `FERRY_MESH_APP=<name>:<port>`: HTTP/1.1 on `port`, answering every
/// request with `<name>` and the request's `ferry-client-identity` header
/// (if any): `name=<name> identity=<value or ->`. A WebSocket handshake
/// (`upgrade: websocket` with a `sec-websocket-key`) is answered with
/// `101` and `sec-websocket-accept: accept-<key>`; then every line comes
/// back prefixed with `ws <name>: `.
pub(crate) fn http_app(spec: &str) -> Result<()> {
    let (name, port) = spec.split_once(':').context("expected NAME:PORT")?;
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))?;
    for conn in listener.incoming().flatten() {
        let name = name.to_owned();
        std::thread::spawn(move || serve_http(conn, &name));
    }
    Ok(())
}

fn serve_http(conn: TcpStream, name: &str) -> Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut identity = "-".to_owned();
        let mut length = 0usize;
        let (mut websocket, mut key) = (false, None);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "ferry-client-identity" => identity = value.trim().to_owned(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "upgrade" => websocket = value.trim().eq_ignore_ascii_case("websocket"),
                    "sec-websocket-key" => key = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let (true, Some(key)) = (websocket, &key) {
            let switching = format!(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n\
                 upgrade: websocket\r\nsec-websocket-accept: accept-{key}\r\n\r\n"
            );
            writer.write_all(switching.as_bytes())?;
            line.clear();
            while reader.read_line(&mut line)? > 0 {
                writer.write_all(format!("ws {name}: {line}").as_bytes())?;
                line.clear();
            }
            return Ok(());
        }
        let answer = format!("name={name} identity={identity}\n");
        // One write: `write!` would send each piece on its own, and
        // Nagle's algorithm would hold the last one for a delayed ACK.
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        writer.write_all(response.as_bytes())?;
    }
}

/// `FERRY_MESH_ECHO=<port>`: a line-echo server (opaque TCP): every line
/// comes back prefixed with `echo: `.
pub(crate) fn echo_app(port: &str) -> Result<()> {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))?;
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || -> Result<()> {
            let mut reader = BufReader::new(conn.try_clone()?);
            let mut writer = conn;
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                writer.write_all(format!("echo: {line}").as_bytes())?;
                line.clear();
            }
            Ok(())
        });
    }
    Ok(())
}

/// `FERRY_MESH_LOAD=<addr>|<count>|<header or ->`: `count` GETs of `/` at
/// `addr` over keep-alive connections (a new one after any failure),
/// printing one line `TALLY {"<name>": n, ..., "failed": n}`.
pub(crate) fn load_client(spec: &str) -> Result<()> {
    let parts: Vec<&str> = spec.split('|').collect();
    let [addr, count, header] = parts[..] else {
        bail!("expected ADDR|COUNT|HEADER");
    };
    let count: usize = count.parse()?;
    let header = (header != "-").then(|| format!("{header}\r\n"));
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut conn: Option<(BufReader<TcpStream>, TcpStream)> = None;
    for _ in 0..count {
        let answer = (|| -> Result<String> {
            if conn.is_none() {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                conn = Some((BufReader::new(stream.try_clone()?), stream));
            }
            let (reader, writer) = conn.as_mut().context("connected")?;
            let request = format!(
                "GET / HTTP/1.1\r\nhost: {addr}\r\n{}\r\n",
                header.as_deref().unwrap_or("")
            );
            writer.write_all(request.as_bytes())?;
            read_response(reader)
        })();
        match answer {
            Ok(body) => {
                let name = body
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("name="))
                    .unwrap_or("unknown")
                    .to_owned();
                *tally.entry(name).or_default() += 1;
            }
            Err(error) => {
                eprintln!("request failed: {error:#}");
                *tally.entry("failed".to_owned()).or_default() += 1;
                conn = None;
            }
        }
    }
    println!("TALLY {}", serde_json::to_string(&tally)?);
    Ok(())
}

/// One HTTP/1.1 response's body; fails on a status other than 200.
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<String> {
    let mut status = String::new();
    if reader.read_line(&mut status)? == 0 {
        bail!("connection closed");
    }
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((key, value)) = trimmed.split_once(':')
            && key.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if !status.contains(" 200 ") {
        bail!("{} {}", status.trim(), body.trim());
    }
    Ok(body)
}

/// `FERRY_MESH_RELAY=<listen addr>|<unix socket>`: accepts TCP on the
/// node's address and carries each connection over the unix socket, which
/// the test process serves outside the namespaces (unix sockets cross
/// network namespaces; TCP cannot).
pub(crate) fn relay(spec: &str) -> Result<()> {
    let (listen, socket) = spec.split_once('|').context("expected ADDR|SOCKET")?;
    let listener = TcpListener::bind(listen)?;
    for tcp in listener.incoming().flatten() {
        let socket = socket.to_owned();
        std::thread::spawn(move || -> Result<()> {
            let unix = UnixStream::connect(&socket)?;
            splice(tcp, unix)
        });
    }
    Ok(())
}

/// Copies both ways until both sides are done.
pub(crate) fn splice(tcp: TcpStream, unix: UnixStream) -> Result<()> {
    let (mut tcp_read, mut unix_write) = (tcp.try_clone()?, unix.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut tcp_read, &mut unix_write);
        let _ = unix_write.shutdown(Shutdown::Write);
    });
    let (mut unix_read, mut tcp_write) = (unix, tcp);
    let _ = std::io::copy(&mut unix_read, &mut tcp_write);
    let _ = tcp_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// Sends `lines` to a line-echo server at `addr` over one connection and
/// returns what came back; with `websocket`, after a WebSocket handshake
/// with an HTTP app (see [`http_app`]), which must succeed.
pub(crate) fn echo_exchange(addr: &str, lines: &[&str], websocket: bool) -> Result<Vec<String>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    if websocket {
        let key = "bWVzaC1rZXk=";
        writer.write_all(
            format!(
                "GET /chat HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\n\
                 upgrade: websocket\r\nsec-websocket-key: {key}\r\n\
                 sec-websocket-version: 13\r\n\r\n"
            )
            .as_bytes(),
        )?;
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            if reader.read_line(&mut head)? == 0 {
                bail!("connection closed during the handshake: {head:?}");
            }
        }
        let head = head.to_ascii_lowercase();
        let accept = format!(
            "sec-websocket-accept: accept-{}\r\n",
            key.to_ascii_lowercase()
        );
        if !head.starts_with("http/1.1 101") || !head.contains(&accept) {
            bail!("the WebSocket handshake failed: {head:?}");
        }
    }
    let mut out = Vec::new();
    let started = Instant::now();
    for line in lines {
        writer.write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        reader.read_line(&mut answer)?;
        out.push(answer.trim_end().to_owned());
    }
    if started.elapsed() > Duration::from_secs(20) {
        bail!("echo exchange took {:?}", started.elapsed());
    }
    Ok(out)
}
