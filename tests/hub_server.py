#!/usr/bin/env python3
"""A Hugging Face Hub stand-in for tests/hub.rs and benches/remote.sh.

Python's standard library only, like tests/remote_server.py. It answers the
requests huggingface_hub (hf_api.py, file_download.py) makes, as the Hub
answers them:

    hub_server.py ROOT [--token T]... [--ungranted-token T]... [--page N]
                       [--rate BYTES_PER_SECOND]

  GET  /api/{models,datasets,spaces}/ORG/NAME[/revision/REV]
       model_info: {"id", "sha", "private", "gated", "siblings"};
  GET  /api/{...}/ORG/NAME/tree/REV[/PATH]?recursive=&expand=
       list_repo_tree: [{"type": "file"|"directory", "path", "oid", "size",
       "lfs"}], N entries a page (--page), the next page in a
       `Link: <url>; rel="next"` header;
  GET|HEAD /[datasets/|spaces/]ORG/NAME/resolve/REV/PATH
       a small file is served here (Range, ETag, If-Match); a
       `.safetensors` or `.bin` file (an LFS file) is a 302 to the second,
       "CDN" port (`/blobs/SHA256?X-Amz-Signature=...`), with
       `X-Linked-Etag` and `X-Linked-Size`; every answer has
       `X-Repo-Commit`. The CDN refuses (400) a request that carries an
       Authorization header: a client must not forward it to another host.

Access, as the Hub: a public repository is open; a private one is
"Repository not found" (401 without a token, 404 with one) unless a
`--token` is sent; a gated one lists freely but its files need a `--token`
(401 `GatedRepo` without a token, 403 with an `--ungranted-token`). An
unknown token is 401 "Invalid credentials in Authorization header".
Errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound,
EntryNotFound, GatedRepo) and `X-Error-Message`.

Control endpoints, for the tests:
  POST /__push?repo=models/ORG/NAME&src=DIR[&branch=main][&access=public]
       [&defer=N]
       a new commit of the repository with the files under DIR (subfolders
       included) on top of the branch; the body is its sha. With defer=N
       the push happens just before the Nth file request from now is
       answered (a push in the middle of a run).
  POST /__rename?from=models/A/B&to=models/C/D
       the old name answers every request with a relative 307 to the new.
  GET  /__stats   JSON {path: {"requests": n, "bytes": n}}: body bytes sent
                  per request path (both ports; no query);
  POST /__reset   clears the stats.
Prints `port N` (the Hub's port) once listening; exits when stdin closes.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {}
REPOS = {}  # "models/org/name" -> repo dict
RENAMED = {}  # old "models/org/name" -> new
PENDING = []  # [remaining file requests, push arguments]
CONFIG = {"root": ".", "tokens": set(), "ungranted": set(), "page": 1000,
          "rate": 0, "cdn_port": 0}
TYPES = ("models", "datasets", "spaces")


def count(path, sent=0, request=False):
    with LOCK:
        entry = STATS.setdefault(path, {"requests": 0, "bytes": 0})
        entry["bytes"] += sent
        if request:
            entry["requests"] += 1


def is_lfs(path):
    return path.endswith((".safetensors", ".bin"))


def push(repo_id, src, branch="main", access="public"):
    """A new commit of `repo_id` with the files under `src`; its sha."""
    files = {}
    for folder, _, names in os.walk(src):
        for name in names:
            local = os.path.join(folder, name)
            data = open(local, "rb").read()
            digest = hashlib.sha256(data).hexdigest()
            blob = os.path.join(CONFIG["root"], "blobs", digest)
            if not os.path.exists(blob):
                os.makedirs(os.path.dirname(blob), exist_ok=True)
                shutil.copyfile(local, blob)
            rel = os.path.relpath(local, src).replace(os.sep, "/")
            oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            files[rel] = {"sha256": digest, "size": len(data), "oid": oid}
    with LOCK:
        repo = REPOS.setdefault(repo_id, {"access": access, "branches": {},
                                          "commits": {}})
        repo["access"] = access
        seed = json.dumps([repo_id, branch, len(repo["commits"]), files],
                          sort_keys=True).encode()
        sha = hashlib.sha1(seed).hexdigest()
        repo["commits"][sha] = files
        repo["branches"][branch] = sha
    return sha


def take_pending_pushes():
    """Counts one file request; runs the pushes whose turn it is."""
    due = []
    with LOCK:
        for entry in PENDING:
            entry[0] -= 1
            if entry[0] == 0:
                due.append(entry[1])
        PENDING[:] = [e for e in PENDING if e[0] > 0]
    for args in due:
        push(**args)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cdn = False

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
            return len(body)
        return 0

    def error(self, status, code, message):
        headers = [("X-Error-Message", message),
                   ("Content-Type", "application/json")]
        if code:
            headers.append(("X-Error-Code", code))
        return self.reply(status, json.dumps({"error": message}).encode(), headers)

    def json(self, value, headers=()):
        body = json.dumps(value).encode()
        sent = self.reply(200, body, [("Content-Type", "application/json")] + list(headers))
        count(urllib.parse.urlsplit(self.path).path, sent=sent)

    # ------------------------------------------------------------ control

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if url.path == "/__reset":
            with LOCK:
                STATS.clear()
            return self.reply(204)
        if url.path == "/__rename":
            with LOCK:
                RENAMED[query["from"]] = query["to"]
            return self.reply(204)
        if url.path == "/__push":
            args = {"repo_id": query["repo"], "src": query["src"],
                    "branch": query.get("branch", "main"),
                    "access": query.get("access", "public")}
            if "defer" in query:
                with LOCK:
                    PENDING.append([int(query["defer"]), args])
                return self.reply(200, b"deferred")
            return self.reply(200, push(**args).encode())
        return self.reply(404)

    # ------------------------------------------------------------ reading

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if url.path == "/__stats":
            with LOCK:
                body = json.dumps(STATS).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        count(path, request=True)
        if self.cdn:
            return self.serve_cdn(path)
        parts = url.path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in TYPES:
            return self.serve_api(parts[1], parts[2:], url)
        repo_type = "models"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0], parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.serve_resolve(repo_type, parts, url)
        return self.error(404, None, "Not Found")

    def token(self):
        """(sent a token, the token is known, the token may read gated)."""
        auth = self.headers.get("Authorization")
        if auth is None:
            return False, False, False
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        granted = token in CONFIG["tokens"]
        return True, granted or token in CONFIG["ungranted"], granted

    def repo(self, repo_id, url):
        """The repository, or None after answering the request (a redirect
        of a renamed one, a refused token, an unknown or private one)."""
        with LOCK:
            new = RENAMED.get(repo_id)
        if new is not None:
            old_path = "/" + repo_id.split("/", 1)[1]
            target = url.path.replace(old_path, "/" + new.split("/", 1)[1], 1)
            if url.query:
                target += "?" + url.query
            self.reply(307, b"", [("Location", target)])
            return None
        sent, known, _ = self.token()
        if sent and not known:
            self.error(401, None, "Invalid credentials in Authorization header")
            return None
        with LOCK:
            repo = REPOS.get(repo_id)
        if repo is None or (repo["access"] == "private" and not known):
            self.error(404 if sent else 401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def commit(self, repo, revision):
        revision = urllib.parse.unquote(revision)
        with LOCK:
            sha = repo["branches"].get(revision, revision)
            files = repo["commits"].get(sha)
        if files is None:
            self.error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            return None, None
        return sha, files

    def serve_api(self, repo_type, rest, url):
        repo_id = "%s/%s/%s" % (repo_type, rest[0], rest[1])
        repo = self.repo(repo_id, url)
        if repo is None:
            return
        tail = rest[2:]
        if not tail or tail[0] == "revision":
            with LOCK:
                default = repo["branches"].get("main") or next(iter(repo["branches"].values()))
            sha, files = self.commit(repo, tail[1] if len(tail) > 1 else default)
            if sha is None:
                return
            return self.json({
                "id": "%s/%s" % (rest[0], rest[1]), "sha": sha,
                "private": repo["access"] == "private",
                "gated": "manual" if repo["access"] == "gated" else False,
                "siblings": [{"rfilename": p} for p in sorted(files)]})
        if tail[0] != "tree" or len(tail) < 2:
            return self.error(404, None, "Not Found")
        sha, files = self.commit(repo, tail[1])
        if sha is None:
            return
        folder = urllib.parse.unquote("/".join(tail[2:])).strip("/")
        query = dict(urllib.parse.parse_qsl(url.query))
        recursive = query.get("recursive", "false").lower() == "true"
        under = folder + "/" if folder else ""
        entries, dirs = [], set()
        for path, f in files.items():
            if not path.startswith(under):
                continue
            rest_path = path[len(under):].split("/")
            for depth in range(1, len(rest_path)):
                if depth == 1 or recursive:
                    dirs.add(under + "/".join(rest_path[:depth]))
            if len(rest_path) == 1 or recursive:
                entry = {"type": "file", "oid": f["oid"], "size": f["size"], "path": path}
                if is_lfs(path):
                    entry["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}
                entries.append(entry)
        if folder and not entries and not dirs:
            return self.error(404, "EntryNotFound", "%s does not exist on %s" % (folder, sha))
        for d in dirs:
            entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(),
                            "size": 0, "path": d})
        entries.sort(key=lambda e: e["path"])
        start = int(query.get("cursor", "0"))
        page = entries[start:start + CONFIG["page"]]
        headers = []
        if start + CONFIG["page"] < len(entries):
            query["cursor"] = str(start + CONFIG["page"])
            host = self.headers.get("Host", "127.0.0.1")
            next_url = "http://%s%s?%s" % (host, url.path, urllib.parse.urlencode(query))
            headers.append(("Link", '<%s>; rel="next"' % next_url))
        return self.json(page, headers)

    def serve_resolve(self, repo_type, parts, url):
        repo_id = "%s/%s/%s" % (repo_type, parts[0], parts[1])
        repo = self.repo(repo_id, url)
        if repo is None:
            return
        sha, files = self.commit(repo, parts[3])
        if sha is None:
            return
        if repo["access"] == "gated":
            sent, _, granted = self.token()
            if not granted:
                return self.error(403 if sent else 401, "GatedRepo",
                                  "Access to model %s/%s is restricted." % (parts[0], parts[1]))
        path = urllib.parse.unquote("/".join(parts[4:]))
        f = files.get(path)
        if f is None:
            return self.error(404, "EntryNotFound", "Entry not found")
        if self.command == "GET":
            take_pending_pushes()
        headers = [("X-Repo-Commit", sha)]
        if is_lfs(path):
            location = "http://127.0.0.1:%d/blobs/%s?X-Amz-Signature=%s" % (
                CONFIG["cdn_port"], f["sha256"], "f00d" * 8)
            headers += [("Location", location), ("X-Linked-Etag", '"%s"' % f["sha256"]),
                        ("X-Linked-Size", str(f["size"])), ("ETag", '"%s"' % f["oid"])]
            return self.reply(302, b"", headers)
        self.send_file(urllib.parse.unquote(url.path), f["sha256"], '"%s"' % f["oid"], headers)

    def serve_cdn(self, path):
        if self.headers.get("Authorization") is not None:
            count("__authorization_leaked", request=True)
            return self.reply(400, b"an Authorization header reached the CDN")
        m = re.fullmatch(r"/blobs/([0-9a-f]{64})", path)
        if not m:
            return self.reply(404, b"not found")
        self.send_file(path, m.group(1), '"%s"' % m.group(1), [])

    def send_file(self, stat_path, digest, etag, headers):
        local = os.path.join(CONFIG["root"], "blobs", digest)
        size = os.path.getsize(local)
        headers = headers + [("Accept-Ranges", "bytes"), ("ETag", etag)]
        match = self.headers.get("If-Match")
        if match and match.strip() != "*" and etag not in [m.strip() for m in match.split(",")]:
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
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(local, "rb") as f:
            self.send_body(stat_path, f, start, end - start)

    def send_body(self, path, f, offset, length):
        sock = self.connection
        step = 1 << 20
        rate = CONFIG["rate"]
        if rate:
            step = max(16 << 10, rate // 20)
        began = time.monotonic()
        sent = 0
        while sent < length:
            n = min(step, length - sent)
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
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)


class CdnHandler(Handler):
    cdn = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that drops a keep-alive connection is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[])
    parser.add_argument("--ungranted-token", action="append", default=[])
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=0)
    args = parser.parse_args()
    CONFIG.update(root=os.path.realpath(args.root), tokens=set(args.token),
                  ungranted=set(args.ungranted_token), page=args.page, rate=args.rate)
    cdn = Server(("127.0.0.1", 0), CdnHandler)
    CONFIG["cdn_port"] = cdn.server_address[1]
    hub = Server(("127.0.0.1", args.port), Handler)
    for server in (cdn, hub):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("port %d" % hub.server_address[1], flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
