"""A fake model hub on 127.0.0.1 for the download tests: the few Hugging Face routes
`huggingface_hub.snapshot_download` uses, and ModelScope's file-list and file routes.

It serves a folder's files as one repository. `gated=True` answers 401 to every route, as the hub
does for a gated repository before its licence is accepted, unless the request carries `token`; `cut_after=N` closes the connection
after N bytes of the first large-file download, as a dropped connection would. Every Range header
it receives is kept in `ranges`, so a test can see a download resume.
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, folder: Path, repo_id: str, *, gated: bool = False,
                 token: str | None = None, cut_after: int | None = None) -> None:
        self.folder, self.repo_id, self.gated, self.cut_after = Path(folder), repo_id, gated, cut_after
        self.token = token  # with gated=True: the one token that is let in
        self.ranges: list[str] = []
        self.fetched: list[str] = []  # every file whose bytes were asked for (GET, not HEAD)
        self.files = {p.relative_to(self.folder).as_posix(): p
                      for p in sorted(self.folder.rglob("*")) if p.is_file()}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- routes ----
    def answer(self, req: BaseHTTPRequestHandler, body: bool) -> None:
        url = urlparse(req.path)
        path = unquote(url.path)
        if self.gated and req.headers.get("Authorization") != f"Bearer {self.token}":
            return self.send(req, 401, b'{"error": "Access to model is restricted"}', body,
                             {"X-Error-Code": "GatedRepo",
                              "X-Error-Message": "Access to this model is restricted."})
        hf_api = f"/api/models/{self.repo_id}/"
        ms_api = f"/api/v1/models/{self.repo_id}/repo"
        if path.startswith(hf_api + "revision/"):
            info = {"id": self.repo_id, "sha": COMMIT, "private": False, "gated": False,
                    "siblings": [{"rfilename": name} for name in self.files]}
            return self.send_json(req, info, body)
        if path.startswith(hf_api + "tree/"):
            tree = [{"type": "file", "path": name, "size": p.stat().st_size, "oid": self.oid(p)}
                    for name, p in self.files.items()]
            return self.send_json(req, tree, body)
        prefix = f"/{self.repo_id}/resolve/"
        if path.startswith(prefix):
            name = path[len(prefix):].split("/", 1)[1]
            return self.send_file(req, name, body)
        if path == ms_api + "/files":
            files = [{"Name": Path(name).name, "Path": name, "Size": p.stat().st_size,
                      "Type": "blob", "Sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                      "Revision": COMMIT} for name, p in self.files.items()]
            return self.send_json(req, {"Code": 200, "Success": True,
                                        "Data": {"Files": files}}, body)
        if path == ms_api:
            name = parse_qs(url.query).get("FilePath", [""])[0]
            return self.send_file(req, name, body)
        return self.send(req, 404, b'{"error": "not found"}', body, {"X-Error-Code": "RepoNotFound"})

    def oid(self, path: Path) -> str:
        return hashlib.sha1(path.read_bytes()).hexdigest()

    def send_file(self, req: BaseHTTPRequestHandler, name: str, body: bool) -> None:
        path = self.files.get(name)
        if path is None:
            return self.send(req, 404, b"", body, {"X-Error-Code": "EntryNotFound"})
        data = path.read_bytes()
        if body:
            self.fetched.append(name)
        start = 0
        status = 200
        if req.headers.get("Range"):
            self.ranges.append(f"{name}: {req.headers['Range']}")
            start = int(req.headers["Range"].split("=")[1].split("-")[0])
            status = 206
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{self.oid(path)}"', "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        chunk = data[start:]
        if body and self.cut_after is not None and start == 0 and len(data) > self.cut_after:
            self_cut, self.cut_after = self.cut_after, None  # only once: the retry gets the rest
            req.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(chunk))}.items():
                req.send_header(key, value)
            req.end_headers()
            req.wfile.write(chunk[:self_cut])
            req.wfile.flush()
            req.close_connection = True
            req.connection.shutdown(2)
            return
        self.send(req, status, chunk, body, headers)

    def send_json(self, req: BaseHTTPRequestHandler, value: object, body: bool) -> None:
        self.send(req, 200, json.dumps(value).encode(), body,
                  {"Content-Type": "application/json", "X-Repo-Commit": COMMIT})

    def send(self, req: BaseHTTPRequestHandler, status: int, data: bytes, body: bool,
             headers: dict[str, str]) -> None:
        req.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            req.send_header(key, value)
        req.end_headers()
        if body:
            req.wfile.write(data)
