#!/usr/bin/env python3
"""Connects to HOST PORT and prints what the server sends until its first final SMTP reply line
(three digits and a space) or until SECONDS pass, whichever comes first; then sends QUIT when the
reply was final and closes. The end-to-end test runs it in a client namespace to tell Postfix's
`220 ` banner from the stall listener's endless `220-` greeting."""
import socket
import sys
import time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + seconds
got = b""
final = False
with socket.create_connection((host, port), timeout=seconds) as s:
    while not final:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
        final = any(len(l) >= 4 and l[:3].isdigit() and l[3:4] == b" " for l in got.split(b"\r\n")[:-1])
    if final:
        s.sendall(b"QUIT\r\n")
sys.stdout.write(got.decode("latin-1"))
