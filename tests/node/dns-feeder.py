#!/usr/bin/env python3
"""Feeds the node's DNS server (dnsmasq) with the cluster's Services.

Watches Services and Endpoints on the apiserver and writes a hosts file for
dnsmasq's --addn-hosts, one line per name:

    CLUSTER_IP  NAME.NAMESPACE.svc.DOMAIN          (a ClusterIP Service)
    POD_IP      NAME.NAMESPACE.svc.DOMAIN          (a headless Service: its ready endpoints)
    POD_IP      HOSTNAME.NAME.NAMESPACE.svc.DOMAIN (endpoints with a hostname)

and sends dnsmasq SIGHUP whenever the file changes, so a new Service
resolves a moment after it is created. Watches restart from a fresh list
after any error. Standard library only.

usage: dns-feeder.py SERVER CA CERT KEY HOSTS_FILE DNSMASQ_PID DOMAIN
"""
import http.client
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.parse


class Feeder:
    def __init__(self, server, ca, cert, key, hosts, pid, domain):
        url = urllib.parse.urlsplit(server)
        self.host, self.port = url.hostname, url.port or 443
        self.tls = ssl.create_default_context(cafile=ca)
        self.tls.load_cert_chain(cert, key)
        self.hosts, self.pid, self.domain = hosts, pid, domain
        self.lock = threading.Lock()
        self.objects = {"services": {}, "endpoints": {}}
        self.written = None

    def request(self, path, timeout):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {resp.read()[:200]!r}")
        return resp

    def follow(self, kind):
        """List, then watch, `kind` for ever; relist after any error."""
        while True:
            try:
                listed = json.load(self.request(f"/api/v1/{kind}", 10))
                with self.lock:
                    self.objects[kind] = {key(o): o for o in listed["items"]}
                self.render()
                rv = listed["metadata"]["resourceVersion"]
                watch = self.request(f"/api/v1/{kind}?watch=1&resourceVersion={rv}&timeoutSeconds=240", 300)
                for line in iter(watch.readline, b""):
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: relist
                    with self.lock:
                        if event["type"] == "DELETED":
                            self.objects[kind].pop(key(event["object"]), None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self.objects[kind][key(event["object"])] = event["object"]
                    self.render()
            except Exception as err:  # the apiserver restarted, went away, ...
                log(f"{kind}: {err}; listing again")
                time.sleep(0.5)

    def lines(self):
        out = set()
        with self.lock:
            for (ns, name), svc in self.objects["services"].items():
                fqdn = f"{name}.{ns}.svc.{self.domain}"
                ip = svc.get("spec", {}).get("clusterIP")
                if ip and ip != "None":
                    out.add(f"{ip} {fqdn}")
                    continue
                if svc.get("spec", {}).get("type") == "ExternalName":
                    continue
                eps = self.objects["endpoints"].get((ns, name), {})
                for subset in eps.get("subsets") or []:
                    for addr in subset.get("addresses") or []:
                        out.add(f"{addr['ip']} {fqdn}")
                        if addr.get("hostname"):
                            out.add(f"{addr['ip']} {addr['hostname']}.{fqdn}")
        return "".join(line + "\n" for line in sorted(out))

    def render(self):
        text = self.lines()
        with self.lock:
            if text == self.written:
                return
            tmp = self.hosts + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.hosts)
            self.written = text
        try:
            os.kill(self.pid, signal.SIGHUP)  # dnsmasq re-reads --addn-hosts
        except ProcessLookupError:
            log(f"dnsmasq (pid {self.pid}) is gone")
        log(f"{text.count(chr(10))} names")


def key(obj):
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


def main(argv):
    if len(argv) != 7:
        sys.exit(__doc__)
    server, ca, cert, key_file, hosts, pid, domain = argv
    feeder = Feeder(server, ca, cert, key_file, hosts, int(pid), domain)
    threads = [threading.Thread(target=feeder.follow, args=(k,), daemon=True)
               for k in ("services", "endpoints")]
    for t in threads:
        t.start()
    while True:  # until SIGTERM (down.sh)
        time.sleep(3600)


main(sys.argv[1:])
