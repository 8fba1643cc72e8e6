#!/usr/bin/env python3
"""What a scrape of the metrics endpoint costs with many listings in force.

Starts `tarpitd` (release build) in a private network namespace with the metrics endpoint on
127.0.0.1:9465 and a spam trap, appends one trap hit per new client (each in its own IPv6 /48 of
2001:db8::/32, so every line is a listing), waits until the endpoint reports them all active, then
times scrapes with curl from inside the namespace (each a collection on the daemon's core: the
store's active listings, the kernel's rule counters, the stall figures), more than a second apart
so that none is served from the previous one. Prints p50 and max of the HTTP exchange and the
response size. Needs root and curl.
Usage: scripts/bench-metrics.py [LISTINGS] [SCRAPES]
"""
import os
import subprocess
import sys
import tempfile
import time

LISTINGS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
SCRAPES = int(sys.argv[2]) if len(sys.argv) > 2 else 10
URL = "http://127.0.0.1:9465/metrics"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.geteuid() != 0:
    sys.exit("bench-metrics: needs root (network namespaces and nftables)")
subprocess.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT, check=True)
ns = f"tarpit-metrics-{os.getpid()}"


def in_ns(*args, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *args], **kw)


def curl():
    """One scrape: (seconds, bytes, body)."""
    out = in_ns("curl", "-sS", "-w", "\n%{time_total} %{size_download}", URL,
                capture_output=True, text=True, check=True).stdout
    body, _, figures = out.rpartition("\n")
    seconds, size = figures.split()
    return float(seconds), int(size), body


def active(body):
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith("tarpit_listings_active{"))


subprocess.run(["ip", "netns", "add", ns], check=True)
try:
    in_ns("ip", "link", "set", "lo", "up", check=True)
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "mail.log")
        open(log, "w").close()
        with open(os.path.join(d, "tarpit.yaml"), "w") as f:
            f.write(f"sources: [{{ file: {log} }}]\nstate: {{ path: {d}/state.db }}\n"
                    f"control: {{ socket: {d}/control.sock, group: root }}\n"
                    f"policy: {{ traps: [\"trap@example.org\"] }}\n"
                    f"metrics: {{ listen: \"127.0.0.1:9465\" }}\n")
        err = open(os.path.join(d, "tarpitd.log"), "w")
        daemon = subprocess.Popen(["ip", "netns", "exec", ns, os.path.join(ROOT, "target/release/tarpitd"),
                                   "--config", f"{d}/tarpit.yaml"], stderr=err, stdout=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while in_ns("curl", "-sf", "-o", "/dev/null", URL).returncode != 0:
                if time.time() > deadline:
                    sys.exit(f"tarpitd did not come up; see {d}/tarpitd.log")
                time.sleep(0.1)
            stamp = time.strftime("%b %e %H:%M:%S")
            with open(log, "a") as out:
                for i in range(1, LISTINGS + 1):
                    out.write(f"{stamp} mx postfix/smtpd[42]: NOQUEUE: reject: RCPT from unknown[2001:db8:{i:x}::1]: "
                              f"550 5.7.1 <trap@example.org>: Recipient address rejected: Access denied; "
                              f"from=<s@example.com> to=<trap@example.org> proto=ESMTP helo=<x>\n")
            deadline = time.time() + 300
            while True:
                time.sleep(1.1)
                n = active(curl()[2])
                if n >= LISTINGS:
                    break
                if time.time() > deadline:
                    sys.exit(f"only {n:.0f} of {LISTINGS} listings after 5 minutes")
            times = []
            for _ in range(SCRAPES):
                time.sleep(1.1)
                seconds, size, _ = curl()
                times.append(seconds * 1000)
            times.sort()
            print(f"{LISTINGS} active listings: scrape p50 {times[len(times) // 2]:.2f} ms, "
                  f"max {times[-1]:.2f} ms over {SCRAPES} scrapes; {size} bytes")
        finally:
            daemon.terminate()
            daemon.wait()
            err.close()
finally:
    in_ns("nft", "delete", "table", "inet", "tarpit", capture_output=True)
    subprocess.run(["ip", "netns", "del", ns])
