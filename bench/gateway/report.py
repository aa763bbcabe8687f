"""Prints the gateway benchmark's medians and ratios as a Markdown table."""
import statistics
import sys
from collections import defaultdict

rows = defaultdict(lambda: {"rps": [], "p50": [], "p99": []})
with open(sys.argv[1]) as f:
    for line in f:
        _, target, rps, p50, p99 = line.split()
        rows[target]["rps"].append(float(rps))
        rows[target]["p50"].append(float(p50))
        rows[target]["p99"].append(float(p99))
rss_kib = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else 0

med = {t: {k: statistics.median(v) for k, v in r.items()} for t, r in rows.items()}
print(f"rounds: {len(rows['direct']['rps'])}; ferry-proxy RSS after the run: {rss_kib / 1024:.1f} MiB\n")
print("| target | req/s (saturation) | p50 ms @ fixed rate | p99 ms @ fixed rate | req/s vs direct | req/s vs nginx | p99 vs nginx |")
print("|---|---|---|---|---|---|---|")
for t in ["direct", "ferry", "nginx", "haproxy"]:
    m = med[t]
    print(
        f"| {t} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} "
        f"| {m['rps'] / med['direct']['rps']:.2f} | {m['rps'] / med['nginx']['rps']:.2f} "
        f"| {m['p99'] / med['nginx']['p99']:.2f} |"
    )
