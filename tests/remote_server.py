#!/usr/bin/env python3
"""A range-capable HTTP file server for tests/remote.rs and benches/remote.sh.

Python's standard library only, so every machine that runs the tests can
run it (a Rust server in the test code would need an HTTP crate the product
does not, and the benchmark wants the same server from a shell script).

    remote_server.py ROOT [--port N] [--rate BYTES_PER_SECOND] [--no-etag]
                     [--weak-etag]

Serves the files under ROOT with GET and HEAD, one `Range: bytes=a-b`
(also `a-` and `-n`) per request (206 + Content-Range; 416 past the end),
a strong ETag from the file's inode, mtime and size, `If-Match` (412 when
it does not match), and keep-alive. `--weak-etag` sends weak ETags
(`W/"..."`), which never match `If-Match` (RFC 9110's strong comparison:
any `If-Match` but `*` is answered 412). Prints `port N` on stdout once
listening; exits when stdin closes, so a test that dies takes it along.

Control endpoints, for the tests:
  GET  /__stats          JSON {path: {"requests": n, "bytes": n}} of file
                         requests and body bytes actually sent, per path;
  GET  /__concurrency    JSON {"max": n}: the most file requests in flight
                         at once;
  POST /__reset          clears the stats, the maximum and the faults;
  POST /__fault?path=P&status=503&times=N
                         the next N GETs of P answer that status;
  POST /__fault?path=P&refuse=403&times=N
                         the next N requests of P, HEAD or GET, answer that
                         status, whether P exists or not (a CDN's 403);
  POST /__fault?path=P&cut=K&times=N
                         the next N GETs of P send K body bytes, then close
                         the connection;
  POST /__fault?path=P&stall=K&times=N
                         the next N GETs of P send K body bytes, then
                         nothing (the connection stays open);
  POST /__fault?path=P&overstate=K&times=N
                         the next N GETs of P announce K bytes more than
                         they send: the whole body, then the connection
                         closes;
  POST /__fault?path=P&echo=1&times=N
                         the next N GETs of P answer 403 with a body that
                         quotes a signed URL (every query value a secret).
`--rate` caps each connection's sending rate, to stand in for a network.
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {}
FAULTS = {}  # path -> list of (kind, value): status, cut, stall, overstate, echo
IN_FLIGHT = {"now": 0, "max": 0}
# What a server that echoes a signed URL quotes: every value is a secret.
ECHOED_URL = ("https://cdn.example/f?Signature=SIGVALUE&Policy=POLICYVALUE"
              "&Key-Pair-Id=KEYPAIRVALUE&X-Goog-Credential=GOOGCREDVALUE"
              "&X-Goog-Signature=GOOGSIGVALUE&se=SEVALUE&sp=SPVALUE"
              "&skoid=SKOIDVALUE&X-Amz-Date=AMZVALUE")


def count(path, sent=0, request=False):
    with LOCK:
        entry = STATS.setdefault(path, {"requests": 0, "bytes": 0})
        entry["bytes"] += sent
        if request:
            entry["requests"] += 1


def next_fault(path):
    with LOCK:
        queue = FAULTS.get(path)
        if queue:
            return queue.pop(0)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."
    rate = 0
    etags = True
    weak = False

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with LOCK:
            if url.path == "/__reset":
                STATS.clear()
                FAULTS.clear()
                IN_FLIGHT["max"] = IN_FLIGHT["now"]
            elif url.path == "/__fault":
                times = int(query.get("times", "1"))
                kind = next(k for k in ("status", "cut", "stall", "overstate", "echo", "refuse")
                            if k in query)
                fault = (kind, int(query[kind]))
                FAULTS.setdefault(query["path"], []).extend([fault] * times)
            else:
                return self.reply(404)
        self.reply(204)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/__stats":
            with LOCK:
                body = json.dumps(STATS).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        if url.path == "/__concurrency":
            with LOCK:
                body = json.dumps({"max": IN_FLIGHT["max"]}).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        with LOCK:
            IN_FLIGHT["now"] += 1
            IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
        self.counted = True
        try:
            self.serve_file(url)
        finally:
            self.uncount()

    def uncount(self):
        """Ends this request's place in IN_FLIGHT (once). Called before the
        body's last byte is sent too: a client that has the whole body may
        start its next request at once, before this thread runs again, and
        that must not count as two at a time."""
        if self.counted:
            self.counted = False
            with LOCK:
                IN_FLIGHT["now"] -= 1

    def serve_file(self, url):
        path = urllib.parse.unquote(url.path)
        with LOCK:
            queue = FAULTS.get(path)
            refuse = queue.pop(0) if queue and queue[0][0] == "refuse" else None
        if refuse:
            # As a CDN refuses what it does not have: HEAD and GET, whether
            # the file exists or not.
            count(path, request=True)
            return self.reply(refuse[1], b"refused")
        local = os.path.realpath(os.path.join(self.root, path.lstrip("/")))
        if not local.startswith(self.root + os.sep) or not os.path.isfile(local):
            count(path, request=True)
            return self.reply(404, b"not found")
        count(path, request=True)
        fault = next_fault(path) if self.command == "GET" else None
        if fault and fault[0] == "status":
            return self.reply(fault[1], b"injected failure",
                              [("Retry-After", "0")])
        if fault and fault[0] == "echo":
            return self.reply(403, ("denied: sign again at %s" % ECHOED_URL).encode())
        with open(local, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = '"%x-%x-%x"' % (st.st_ino, st.st_mtime_ns, size)
            if self.weak:
                etag = "W/" + etag
            headers = [("Accept-Ranges", "bytes"),
                       ("Last-Modified", formatdate(st.st_mtime, usegmt=True))]
            if self.etags:
                headers.append(("ETag", etag))
            match = self.headers.get("If-Match")
            if match and match.strip() != "*" and self.etags:
                if self.weak or etag not in [m.strip() for m in match.split(",")]:
                    return self.reply(412, b"precondition failed")
            start, end, status = 0, size, 200
            spec = self.headers.get("Range")
            if spec:
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
                if not m or (m.group(1) == "" and m.group(2) == ""):
                    return self.reply(416, headers=[("Content-Range", "bytes */%d" % size)])
                if m.group(1) == "":
                    start, end = max(0, size - int(m.group(2))), size
                else:
                    start = int(m.group(1))
                    end = size if m.group(2) == "" else min(size, int(m.group(2)) + 1)
                if start >= size or start >= end:
                    return self.reply(416, headers=[("Content-Range", "bytes */%d" % size)])
                status = 206
                headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end - 1, size)))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            announced = end - start
            if fault and fault[0] == "overstate":
                announced += fault[1]
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.flush()
            limit = end - start
            if fault and fault[0] in ("cut", "stall"):
                limit = min(limit, fault[1])
            self.send_body(path, f, start, limit)
            if fault and fault[0] == "stall":
                # Silence until the client gives up and closes.
                try:
                    self.connection.settimeout(600)
                    while self.connection.recv(1 << 16):
                        pass
                except OSError:
                    pass
                self.close_connection = True
                return
            if limit < announced:
                # A connection cut mid-body: the client sees fewer bytes
                # than Content-Length and then the end of the stream.
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def send_body(self, path, f, offset, length):
        sock = self.connection
        step = 1 << 20
        if self.rate:
            step = max(16 << 10, self.rate // 20)
        began = time.monotonic()
        sent = 0
        while sent < length:
            n = min(step, length - sent)
            if sent + n == length:
                # The last byte goes alone, after the request stops
                # counting as in flight (see uncount).
                if n > 1:
                    n -= 1
                else:
                    self.uncount()
            # Counted before sending: a client may have the bytes (and
            # ask for the stats) before sendfile returns here.
            count(path, sent=n)
            try:
                done = os.sendfile(sock.fileno(), f.fileno(), offset + sent, n)
            except (BrokenPipeError, ConnectionResetError):
                done = 0
            if done < n:
                count(path, sent=done - n)
            if done == 0:
                break
            sent += done
            if self.rate and sent < length:
                ahead = sent / self.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--no-etag", action="store_true")
    parser.add_argument("--weak-etag", action="store_true")
    args = parser.parse_args()
    Handler.root = os.path.realpath(args.root)
    Handler.rate = args.rate
    Handler.etags = not args.no_etag
    Handler.weak = args.weak_etag
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("port %d" % server.server_address[1], flush=True)
    # Stop when the parent closes our stdin (or dies).
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
