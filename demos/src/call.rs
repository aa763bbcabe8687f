//! `ferry-echo call`: a small HTTP/1.1 load client for tests that run
//! inside pods (`kubectl exec … ferry-echo call URL`), so images need no
//! curl. It sends GET requests over keep-alive connections (one per
//! `concurrency`), for a count or a duration, optionally paced at a steady
//! rate, and sums up what came back in one [`Tally`]: which echo server
//! answered (the `x-echo-name` header, else the body), which statuses, and
//! the first few distinct errors.
//!
//! A request fails when its status is not 2xx, when its connection fails,
//! or when it takes longer than the timeout. A request is sent again only
//! when a reused keep-alive connection turned out to be closed before the
//! request went out, which no server can have seen.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::echo::{Echoed, NAME_HEADER};

/// How many distinct error messages a [`Tally`] keeps.
pub const MAX_ERRORS: usize = 5;

/// Where to send requests: an `http://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// After this many requests.
    Count(u64),
    /// Once this much time has passed since the start.
    Duration(Duration),
}

/// A steady request rate, over all connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    per_second: f64,
}

/// One `call` run.
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// Where to send the requests.
    pub target: Target,
    /// When to stop.
    pub limit: Limit,
    /// Pacing; as fast as the connections go without it.
    pub rate: Option<Rate>,
    /// Extra request headers (a `host` here replaces the URL's).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Connections used in parallel.
    pub concurrency: NonZeroUsize,
    /// Longest time one request may take, connecting included.
    pub timeout: Duration,
}

/// What a run saw; `ferry-echo call` prints it as one JSON line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Requests made.
    pub total: u64,
    /// Answered with a 2xx status.
    pub ok: u64,
    /// Answered with another status, or not answered at all.
    pub failed: u64,
    /// Answers by echo server name (the `x-echo-name` header, else the body).
    pub by_name: BTreeMap<String, u64>,
    /// Answers by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// The first [`MAX_ERRORS`] distinct failure messages.
    pub errors: Vec<String>,
    /// Wall time of the run, in seconds.
    pub elapsed_secs: f64,
    /// The body of the first answer, to show what a server received (the
    /// headers a sidecar added, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_body: Option<String>,
}

/// Hands out request slots: each is due at a time, until the limit.
#[derive(Debug)]
struct Schedule {
    start: Instant,
    limit: Limit,
    interval: Option<Duration>,
    issued: AtomicU64,
    stopped: AtomicBool,
}

/// What came back for one request.
#[derive(Debug)]
struct Reply {
    status: http::StatusCode,
    /// The echo server that answered, if one did.
    name: Option<String>,
    /// What to report when the status is not a success.
    failure: Option<String>,
    /// The answer's body.
    body: String,
}

/// One connection's worth of requests.
struct Worker {
    spec: Arc<CallSpec>,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

// === impl Target ===

impl FromStr for Target {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url:?}: only http:// URLs are supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Self {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), ToString::to_string),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path_and_query)
    }
}

// === impl Rate ===

impl Rate {
    /// Requests per second; must be positive and finite.
    pub fn per_second(per_second: f64) -> Result<Self, String> {
        if per_second.is_finite() && per_second > 0.0 {
            Ok(Self { per_second })
        } else {
            Err(format!("rate {per_second} is not a positive number"))
        }
    }

    fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `50`, `50/s`, `600/m`, `0.5/s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (number, per) = s.split_once('/').unwrap_or((s, "s"));
        let seconds = match per.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            other => return Err(format!("rate {s:?}: unknown unit {other:?} (use /s or /m)")),
        };
        let count: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("rate {s:?} is not N, N/s or N/m"))?;
        Self::per_second(count / seconds)
    }
}

/// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses a `Name: value` (or `Name:value`) request header.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("header {s:?} is not NAME:VALUE"))?;
    let name = HeaderName::from_str(name.trim()).map_err(|e| format!("header {s:?}: {e}"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("header {s:?}: {e}"))?;
    Ok((name, value))
}

// === impl Tally ===

impl Tally {
    fn answered(&mut self, reply: Reply) {
        self.total += 1;
        if self.first_body.is_none() {
            self.first_body = Some(reply.body);
        }
        *self.by_status.entry(reply.status.as_u16()).or_default() += 1;
        if let Some(name) = reply.name {
            *self.by_name.entry(name).or_default() += 1;
        }
        if reply.status.is_success() {
            self.ok += 1;
        } else {
            self.failed += 1;
            let status = reply.status;
            self.note(reply.failure.unwrap_or_else(|| format!("HTTP {status}")));
        }
    }

    fn unanswered(&mut self, error: String) {
        self.total += 1;
        self.failed += 1;
        self.note(error);
    }

    fn note(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.total += other.total;
        self.ok += other.ok;
        self.failed += other.failed;
        for (name, n) in other.by_name {
            *self.by_name.entry(name).or_default() += n;
        }
        for (status, n) in other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
        for error in other.errors {
            self.note(error);
        }
        if self.first_body.is_none() {
            self.first_body = other.first_body;
        }
    }
}

// === impl Schedule ===

impl Schedule {
    /// The next slot's due time, or `None` once the run is over.
    fn next(&self) -> Option<Instant> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let slot = self.issued.fetch_add(1, Ordering::Relaxed);
        let due = match self.interval {
            Some(interval) => self.start + interval.mul_f64(slot as f64),
            None => Instant::now(),
        };
        match self.limit {
            Limit::Count(count) => (slot < count).then_some(due),
            Limit::Duration(duration) => (due < self.start + duration).then_some(due),
        }
    }
}

// === impl Worker ===

impl Worker {
    async fn run(mut self, schedule: Arc<Schedule>) -> Tally {
        let mut tally = Tally::default();
        while let Some(due) = schedule.next() {
            tokio::time::sleep_until(due).await;
            if schedule.stopped.load(Ordering::Relaxed) {
                break;
            }
            match tokio::time::timeout(self.spec.timeout, self.exchange()).await {
                Ok(Ok(reply)) => tally.answered(reply),
                Ok(Err(error)) => tally.unanswered(format!("{error:#}")),
                Err(_) => {
                    // The connection may be stuck mid-answer: start afresh.
                    self.sender = None;
                    tally.unanswered(format!("timed out after {:?}", self.spec.timeout));
                }
            }
        }
        tally
    }

    /// One request and its answer.
    async fn exchange(&mut self) -> anyhow::Result<Reply> {
        for attempt in 0..2 {
            let reused = self.sender.as_ref().is_some_and(|s| !s.is_closed());
            if !reused {
                self.sender = Some(self.connect().await?);
            }
            let request = self.request()?;
            let sender = self.sender.as_mut().expect("a connection was just made");
            if let Err(error) = sender.ready().await {
                self.sender = None;
                if reused && attempt == 0 {
                    continue;
                }
                return Err(error).context("connection failed");
            }
            let response = match sender.send_request(request).await {
                Ok(response) => response,
                Err(error) => {
                    self.sender = None;
                    if reused && attempt == 0 && error.is_canceled() {
                        continue;
                    }
                    return Err(error).context("request failed");
                }
            };
            let (parts, body) = response.into_parts();
            let body = match body.collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) => {
                    self.sender = None;
                    return Err(error).context("reading the answer failed");
                }
            };
            let body = String::from_utf8_lossy(&body);
            let name = parts
                .headers
                .get(NAME_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| Echoed::name_in(&body));
            let failure = (!parts.status.is_success()).then(|| {
                let cause = parts
                    .headers
                    .get("ferry-error")
                    .and_then(|v| v.to_str().ok())
                    .map(|e| format!(" (ferry-error: {e})"))
                    .unwrap_or_default();
                format!("HTTP {}{cause}", parts.status)
            });
            return Ok(Reply {
                status: parts.status,
                name,
                failure,
                body: body.into_owned(),
            });
        }
        bail!("the connection closed twice before the request went out")
    }

    fn request(&self) -> anyhow::Result<Request<Empty<Bytes>>> {
        let target = &self.spec.target;
        let mut request = Request::get(target.path_and_query.as_str()).body(Empty::new())?;
        let headers = request.headers_mut();
        for (name, value) in &self.spec.headers {
            headers.append(name, value.clone());
        }
        if !headers.contains_key(http::header::HOST) {
            headers.insert(
                http::header::HOST,
                HeaderValue::from_str(&target.authority)?,
            );
        }
        Ok(request)
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        let target = &self.spec.target;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .with_context(|| format!("failed to resolve {}", target.host))?
            .collect();
        let mut last_error = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
                    tokio::spawn(connection);
                    return Ok(sender);
                }
                Err(error) => {
                    last_error = Some(
                        anyhow::Error::new(error).context(format!("failed to connect to {addr}")),
                    )
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{} resolved to no address", target.host)))
    }
}

/// Runs `spec` to its limit.
pub async fn run(spec: CallSpec) -> Tally {
    run_until(spec, std::future::pending()).await
}

/// Runs `spec` to its limit or until `stop` completes; requests under way
/// then still finish and count.
pub async fn run_until(spec: CallSpec, stop: impl Future<Output = ()>) -> Tally {
    let workers = match spec.limit {
        Limit::Count(count) => spec
            .concurrency
            .get()
            .min(count.try_into().unwrap_or(usize::MAX)),
        Limit::Duration(_) => spec.concurrency.get(),
    };
    let schedule = Arc::new(Schedule {
        start: Instant::now(),
        limit: spec.limit,
        interval: spec.rate.map(Rate::interval),
        issued: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
    });
    let spec = Arc::new(spec);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let worker = Worker {
            spec: spec.clone(),
            sender: None,
        };
        set.spawn(worker.run(schedule.clone()));
    }
    let collect = async move {
        let mut tally = Tally::default();
        while let Some(done) = set.join_next().await {
            if let Ok(part) = done {
                tally.merge(part);
            }
        }
        tally
    };
    tokio::pin!(collect);
    let mut tally = tokio::select! {
        tally = &mut collect => tally,
        () = stop => {
            schedule.stopped.store(true, Ordering::Relaxed);
            collect.await
        }
    };
    tally.elapsed_secs = (schedule.start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    tally
}
