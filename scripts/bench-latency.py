#!/usr/bin/env python3
"""End-to-end listing latency: from a line appended to a followed log to the listing in the
kernel set, over N listings (default 1,000), in a private network namespace.

Starts `tarpitd` in a namespace of its own with a spam trap configured, appends one trap hit per
new client (each in its own IPv6 /48 of 2001:db8::/32, so every line is a listing of its own),
and reads the daemon's `listed` log lines, which are written once the kernel has accepted the
element. Prints p50, p99 and max, and checks the set really holds every client. Needs root.
Usage: scripts/bench-latency.py [N]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.geteuid() != 0:
    sys.exit("bench-latency: needs root (network namespaces and nftables)")
subprocess.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT, check=True)
tarpitd = os.path.join(ROOT, "target/release/tarpitd")
ns = f"tarpit-lat-{os.getpid()}"
subprocess.run(["ip", "netns", "add", ns], check=True)
try:
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "mail.log")
        open(log, "w").close()
        with open(os.path.join(d, "tarpit.yaml"), "w") as f:
            f.write(f"""sources: [{{ file: {log} }}]
state: {{ path: {d}/state.db }}
control: {{ socket: {d}/control.sock, group: root }}
stall: {{ listen: ["[::]:2525"] }}
policy: {{ traps: ["trap@example.org"] }}
""")
        err = open(os.path.join(d, "tarpitd.log"), "w")
        env = dict(os.environ, NO_COLOR="1", RUST_LOG="info")
        daemon = subprocess.Popen(["ip", "netns", "exec", ns, tarpitd, "--config", f"{d}/tarpit.yaml"],
                                  stderr=err, stdout=subprocess.DEVNULL, env=env)
        deadline = time.time() + 20
        while not os.path.exists(f"{d}/control.sock") and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        written = {}
        with open(log, "a", buffering=1) as out:
            for i in range(1, N + 1):
                ip = f"2001:db8:{i:x}::1"
                stamp = time.strftime("%b %e %H:%M:%S")
                line = (f"{stamp} mx postfix/smtpd[42]: NOQUEUE: reject: RCPT from unknown[{ip}]: "
                        f"550 5.7.1 <trap@example.org>: Recipient address rejected: Access denied; "
                        f"from=<s@example.com> to=<trap@example.org> proto=ESMTP helo=<x>\n")
                written[f"2001:db8:{i:x}::/64"] = time.time()
                out.write(line)
                out.flush()
                time.sleep(0.005)
        time.sleep(2)
        daemon.terminate()
        daemon.wait()
        err.close()
        listed = {}
        for l in open(os.path.join(d, "tarpitd.log")):
            m = re.match(r"(\S+)\s+INFO .* listed ip=(\S+)", l)
            if m:
                t = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
                listed[m.group(2)] = t
        lat = sorted((listed[k] - written[k]) * 1000 for k in written if k in listed)
        held = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", "tarpit", "listed_v6_nets"],
                              capture_output=True, text=True).stdout
        in_set = sum(1 for k in written if k.split("/")[0] in held)
        if not lat:
            sys.exit("no listing was logged; see the daemon's log")
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
        print(f"listings: {len(lat)} of {N} logged, {in_set} of {N} in the kernel set after the run")
        print(f"line appended -> element in the kernel set: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {lat[-1]:.2f} ms")
finally:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "tarpit"], capture_output=True)
    subprocess.run(["ip", "netns", "del", ns])
