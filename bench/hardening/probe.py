#!/usr/bin/env python3
"""Replays the hostile-client probe against a running gateway and prints
what each attack got: how long a connection that never speaks stays open,
whose Host the backend sees, what malformed requests and dripped bodies
are answered. Standard library only. See README.md.

    bench/hardening/probe.py HOST:PORT [--https HOST:PORT] [--host NAME] [--wait SECONDS]

The route for --host (default legit.test) must lead to a backend that
echoes the request's headers in its body (ferry-echo does) and reads the
body before answering.
"""

import argparse
import socket
import ssl
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(addr, tls=False):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname="probe.invalid")
    return sock


def open_for(sock, wait):
    """Seconds until the peer closes `sock`, or None if still open after `wait`."""
    start = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - start < wait:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def exchange(addr, data, wait=5.0):
    sock = connect(addr)
    sock.sendall(data)
    sock.settimeout(wait)
    out = b""
    try:
        while b"\r\n\r\n" not in out or len(out) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                break
    except OSError:
        pass
    sock.close()
    return out.decode("latin-1")


def first_line(text):
    return text.split("\r\n", 1)[0] or "(nothing)"


def idle_attacks(args):
    attacks = [
        ("HTTP: sends nothing", args.addr, False, b""),
        ("HTTP: 22 bytes of the h2 preface", args.addr, False, PREFACE[:22]),
        ("HTTP: the h2 preface, then nothing", args.addr, False, PREFACE),
    ]
    if args.https:
        attacks.append(("HTTPS: sends nothing", args.https, False, b""))
        attacks.append(("HTTPS: handshake, then nothing", args.https, True, b""))
    results = {}

    def run(name, addr, tls, data):
        try:
            sock = connect(addr, tls)
            sock.sendall(data)
            results[name] = open_for(sock, args.wait)
        except OSError as error:
            results[name] = f"error: {error}"

    threads = [threading.Thread(target=run, args=a) for a in attacks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, *_ in attacks:
        got = results[name]
        if got is None:
            print(f"{name:45} still open after {args.wait:.0f} s")
        elif isinstance(got, float):
            print(f"{name:45} closed after {got:.1f} s")
        else:
            print(f"{name:45} {got}")


def request_attacks(args):
    host = args.host.encode()
    answer = exchange(
        args.addr,
        b"GET http://" + host + b"/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    seen = [l for l in answer.split("\n") if "evil.example" in l.lower()]
    print(f"{'absolute form + Host: evil.example':45} {first_line(answer)}; "
          f"evil.example reached the backend: {bool(seen)}")
    for name, data in [
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nHost: evil.example\r\n\r\n"),
        ("bare LF head", b"GET / HTTP/1.1\nHost: " + host + b"\n\n"),
        ("malformed chunk", b"POST / HTTP/1.1\r\nHost: " + host
         + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ]:
        answer = exchange(args.addr, data)
        cause = [l for l in answer.split("\r\n") if l.lower().startswith("ferry-error")]
        print(f"{name:45} {first_line(answer)} {cause[0] if cause else ''}")

    sock = connect(args.addr)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 1000\r\n\r\n")
    sock.settimeout(2)
    start = time.monotonic()
    answer = b""
    while time.monotonic() - start < args.wait and b"\r\n\r\n" not in answer:
        try:
            sock.sendall(b"x")
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        except socket.timeout:
            continue
        except OSError:
            break
    took = time.monotonic() - start
    print(f"{'body dripped, 1 byte every 2 s':45} {first_line(answer.decode('latin-1'))} after {took:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("addr", help="the HTTP listener, HOST:PORT")
    parser.add_argument("--https", help="an HTTPS listener, HOST:PORT")
    parser.add_argument("--host", default="legit.test", help="a hostname the gateway routes")
    parser.add_argument("--wait", type=float, default=75.0,
                        help="how long to watch an idle connection (seconds)")
    args = parser.parse_args()
    idle_attacks(args)
    request_attacks(args)


if __name__ == "__main__":
    main()
