#!/usr/bin/env python3
"""Writes a realistic mail log for benchmarks: mostly connects, disconnects, queue-manager,
delivery and cleanup lines, with about 10% rejections, deterministic for a seed.

Usage: gen_maillog.py --mta postfix|exim --lines N [--seed S] OUTPUT
Only documentation addresses and example domains are used.
"""
import argparse
import random

REJECT_SHARE = 0.10
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def day_clock(t):
    """(day of November, hour, minute, second) of second t of the log."""
    day, sec = 1 + (t // 86400) % 28, t % 86400
    return day, sec // 3600, sec // 60 % 60, sec % 60


def client(rng):
    if rng.random() < 0.1:
        return "2001:db8:%x:%x::%x" % (rng.randrange(65536), rng.randrange(65536), rng.randrange(1, 65536))
    net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
    return "%s.%d" % (net, rng.randrange(1, 255))


def name(rng):
    return rng.choice(["unknown", "mail%d.example.com" % rng.randrange(500), "mx.example.net",
                       "host-%d.example.org" % rng.randrange(9999)])


def qid(rng):
    return "".join(rng.choice("0123456789ABCDEF") for _ in range(10))


def postfix_lines(rng, n):
    t = 0
    out = []
    rejects = [
        "550 5.1.1 <{r}>: Recipient address rejected: User unknown in local recipient table",
        "554 5.7.1 <{r}>: Relay access denied",
        "554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/{ip}",
        "450 4.7.1 <{h}>: Helo command rejected: Host not found",
        "450 4.7.1 Client host rejected: cannot find your hostname, [{ip}]",
        "554 5.7.1 <{s}>: Sender address rejected: rejected for being a spammer",
        "450 4.2.0 <{r}>: Recipient address rejected: Greylisted, see https://postgrey.example.org/",
    ]
    while len(out) < n:
        t += rng.randrange(0, 3)
        stamp = "Nov %2d %02d:%02d:%02d" % day_clock(t)
        pid = rng.randrange(1000, 60000)
        ip, nm, q = client(rng), name(rng), qid(rng)
        head = "%s mx1 postfix/%%s[%d]: " % (stamp, pid)
        sender = "user%d@example.%s" % (rng.randrange(1000), rng.choice(["com", "net"]))
        rcpt = "%s@example.org" % rng.choice(["alice", "bob", "carol", "dave", "list-owner", "info"])
        helo = nm if nm != "unknown" else "[%s]" % ip
        # A rejected session writes 3 lines (1 reject), a delivered one 8: p = 8r / (1 + 5r)
        # makes r of all lines rejections.
        if rng.random() < 8 * REJECT_SHARE / (1 + 5 * REJECT_SHARE):
            text = rng.choice(rejects).format(r=rcpt, ip=ip, h=helo, s=sender)
            out.append(head % "smtpd" + "connect from %s[%s]" % (nm, ip))
            out.append(head % "smtpd" + "NOQUEUE: reject: RCPT from %s[%s]: %s; from=<%s> to=<%s> proto=ESMTP helo=<%s>"
                       % (nm, ip, text, sender, rcpt, helo))
            out.append(head % "smtpd" + "disconnect from %s[%s] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4" % (nm, ip))
            continue
        relay = "mx%d.example.net[%s]:25" % (rng.randrange(9), client(rng))
        for line in [
            head % "smtpd" + "connect from %s[%s]" % (nm, ip),
            head % "smtpd" + "Anonymous TLS connection established from %s[%s]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" % (nm, ip),
            head % "smtpd" + "%s: client=%s[%s]" % (q, nm, ip),
            head % "cleanup" + "%s: message-id=<%s@%s>" % (q, qid(rng).lower(), nm),
            head % "qmgr" + "%s: from=<%s>, size=%d, nrcpt=1 (queue active)" % (q, sender, rng.randrange(900, 90000)),
            head % "smtpd" + "disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7" % (nm, ip),
            head % rng.choice(["smtp", "local", "lmtp"]) + "%s: to=<%s>, relay=%s, delay=%.1f, delays=0.1/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %s)" % (q, rcpt, relay, rng.random() * 3, qid(rng)),
            head % "qmgr" + "%s: removed" % q,
        ]:
            out.append(line)
    return out[:n]


def exim_lines(rng, n):
    t = 0
    out = []
    rejects = [
        "F=<{s}> rejected RCPT <{r}>: relay not permitted",
        "F=<{s}> rejected RCPT <{r}>: Unknown user",
        "F=<{s}> rejected RCPT <{r}>: {ip} is listed at zen.spamhaus.org",
        "F=<{s}> rejected RCPT <{r}>: Sender verify failed",
    ]
    while len(out) < n:
        t += rng.randrange(0, 3)
        stamp = "2026-11-%02d %02d:%02d:%02d" % day_clock(t)
        ip, nm = client(rng), name(rng)
        helo = nm if nm != "unknown" else "helo.example.net"
        host = "H=%s (%s) [%s]:%d I=[203.0.113.1]:25" % (nm if nm != "unknown" else "", helo, ip, rng.randrange(1024, 65535))
        host = host.replace("H= (", "H=(")
        sender = "user%d@example.%s" % (rng.randrange(1000), rng.choice(["com", "net"]))
        rcpt = "%s@example.org" % rng.choice(["alice", "bob", "carol", "info"])
        mid = "1v%s-000%s-%s" % (qid(rng)[:4], qid(rng)[:3], qid(rng)[:2])
        # A rejection is 1 line, a delivery 3: p = 3r / (1 + 2r) makes r of all lines rejections.
        if rng.random() < 3 * REJECT_SHARE / (1 + 2 * REJECT_SHARE):
            out.append("%s %s %s" % (stamp, host, rng.choice(rejects).format(s=sender, r=rcpt, ip=ip)))
            continue
        for line in [
            "%s %s <= %s %s P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S=%d id=%s@%s" % (stamp, mid, sender, host, rng.randrange(900, 90000), qid(rng).lower(), helo),
            "%s %s => %s R=local_user T=mail_spool" % (stamp, mid, rcpt.split("@")[0]),
            "%s %s Completed" % (stamp, mid),
        ]:
            out.append(line)
    return out[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mta", choices=["postfix", "exim"], required=True)
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("output")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lines = postfix_lines(rng, a.lines) if a.mta == "postfix" else exim_lines(rng, a.lines)
    with open(a.output, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
