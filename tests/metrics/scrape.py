#!/usr/bin/env python3
"""Scrapes a metrics endpoint and parses the answer with the reference Python client's parsers.

Usage: scrape.py URL openmetrics|text [--hostile] [HOST:PORT]

`openmetrics` sends the Accept header Prometheus sends and parses strictly as OpenMetrics 1.0
(prometheus_client.openmetrics.parser); `text` sends no Accept header and parses as the text
format 0.0.4 (prometheus_client.parser). With HOST:PORT, a TCP connection to it is held open
during the scrape (to see it counted). With --hostile, three clients are connected to the
endpoint first and stay connected during the scrape: one silent, one that sent garbage, one in
the middle of an endless header. Prints JSON: the Content-Type, the seconds the scrape took and
every family with its samples. Exits non-zero when the output does not parse.
"""
import json
import socket
import sys
import time
import urllib.parse
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as text

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


def hostile(url):
    """Clients that misbehave, left connected."""
    host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
    clients = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
    clients[1].sendall(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
    clients[2].sendall(b"GET /metrics HTTP/1.1\r\nX-Fill: " + b"a" * 6000)
    return clients


def main():
    args = sys.argv[1:]
    others = hostile(args[0]) if "--hostile" in args else []
    args = [a for a in args if a != "--hostile"]
    url, fmt = args[0], args[1]
    held = None
    if len(args) > 2:
        host, port = args[2].rsplit(":", 1)
        held = socket.create_connection((host, int(port)), timeout=5)
        # Give the listener a moment to accept and count it.
        time.sleep(0.5)
    headers = {"Accept": PROMETHEUS_ACCEPT} if fmt == "openmetrics" else {}
    request = urllib.request.Request(url, headers=headers)
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        content_type = response.headers["Content-Type"]
        body = response.read().decode("utf-8")
    took = time.monotonic() - started
    parse = openmetrics if fmt == "openmetrics" else text
    families = [
        {
            "name": f.name,
            "type": f.type,
            "unit": getattr(f, "unit", ""),
            "help": f.documentation,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples
            ],
        }
        for f in parse(body)
    ]
    for client in others + ([held] if held else []):
        client.close()
    print(json.dumps({"content_type": content_type, "seconds": took, "families": families}))


if __name__ == "__main__":
    main()
