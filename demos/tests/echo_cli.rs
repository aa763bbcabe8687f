//! The `ferry-echo` binary as pods and scripts run it: both command forms,
//! the name from the pod's environment, `call`'s JSON line and exit status,
//! and draining, then a clean exit, on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_demo::call::Tally;

const ECHO: &str = env!("CARGO_BIN_EXE_ferry-echo");

/// A running `ferry-echo` server and the address it printed.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: String,
    name: String,
}

fn command() -> Command {
    let mut command = Command::new(ECHO);
    for var in [
        "FERRY_ECHO_NAME",
        "FERRY_ECHO_NAMESPACE",
        "FERRY_ECHO_LISTEN",
        "POD_NAME",
        "POD_NAMESPACE",
    ] {
        command.env_remove(var);
    }
    command
}

fn serve(args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = command()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ferry-echo starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("reads stdout");
    // "echo NAME listening on ADDR"
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        matches!(words.as_slice(), ["echo", _, "listening", "on", _]),
        "{line:?}"
    );
    Server {
        name: words[1].to_owned(),
        addr: words[4].to_owned(),
        child,
        stdout,
    }
}

fn call(args: &[&str], env: &[(&str, &str)]) -> (Output, Tally) {
    let output = command()
        .arg("call")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("ferry-echo call runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    let tally = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (output, tally)
}

// === impl Server ===

impl Server {
    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    }

    /// Reads its output up to a line that contains `text`.
    fn printed(&mut self, text: &str) -> String {
        loop {
            let mut line = String::new();
            let read = self.stdout.read_line(&mut line).expect("reads stdout");
            assert!(read > 0, "ferry-echo ended without printing {text:?}");
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Waits (at most 10 s) for it to exit; whether it exited 0, and what
    /// it printed meanwhile.
    fn exited(mut self) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                break status;
            }
            assert!(Instant::now() < deadline, "ferry-echo ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("reads stdout");
        (status.success(), rest)
    }
}

#[test]
fn the_old_command_line_serves_until_sigterm() {
    let mut server = serve(&["--name", "legacy", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(server.name, "legacy");
    let url = format!("http://{}/", server.addr);
    // FERRY_ECHO_LISTEN in a pod's environment does not get in call's way.
    let (output, tally) = call(
        &[&url, "--count", "3"],
        &[("FERRY_ECHO_LISTEN", "0.0.0.0:1")],
    );
    assert!(output.status.success(), "{tally:?}");
    assert_eq!((tally.total, tally.ok), (3, 3));
    assert_eq!(tally.by_name.get("legacy"), Some(&3));

    // SIGTERM: it serves on while draining (5 s by default)...
    server.sigterm();
    server.printed("SIGTERM, draining for 5s");
    let (output, tally) = call(&[&url, "--count", "2"], &[]);
    assert!(
        output.status.success(),
        "still serving while draining: {tally:?}"
    );
    // ...and a second signal stops it at once, with status 0.
    server.sigterm();
    let (clean, printed) = server.exited();
    assert!(clean, "exit status after SIGTERM");
    assert!(printed.contains("SIGTERM, stopping now"), "{printed:?}");
}

#[test]
fn in_a_pod_it_answers_with_the_pod_name() {
    let server = serve(
        &["serve", "--listen", "127.0.0.1:0", "--drain", "0s"],
        &[
            ("POD_NAME", "echo-7f9c-x2"),
            ("POD_NAMESPACE", "shop"),
            ("HOSTNAME", "other"),
        ],
    );
    assert_eq!(server.name, "echo-7f9c-x2");
    let url = format!("http://{}/hello", server.addr);
    let (output, tally) = call(
        &[
            &url,
            "--duration",
            "190ms",
            "--rate",
            "25/s",
            "-H",
            "accept: application/json",
        ],
        &[],
    );
    assert!(output.status.success(), "{tally:?}");
    assert_eq!(tally.total, 5, "slots at 0, 40, 80, 120, 160 ms: {tally:?}");
    assert_eq!(tally.by_name.get("echo-7f9c-x2"), Some(&5));
    server.sigterm();
    assert!(server.exited().0, "exit status after SIGTERM");
}

#[test]
fn call_exits_non_zero_when_a_request_fails() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (output, tally) = call(&[&format!("http://{closed}/"), "--count", "2"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!((tally.total, tally.failed), (2, 2));

    let usage = command()
        .args(["call", "http://x/", "--count", "1", "--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "count and duration conflict");
}
