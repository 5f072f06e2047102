"""Accounts and file access for a studio shared on a LAN or over a share link.

Accounts live in a JSON file (`--auth users.json`): name -> bcrypt hash (salted) and an admin
flag; `python app.py adduser NAME [--admin]` writes it. Passwords are never stored.

Files: Gradio serves what handlers return from its cache (`/gradio_api/file=<cache>/<sha>/name`)
and, with `allowed_paths`, from outputs/. `FileGuard` is an ASGI middleware in front of both:
a file in outputs/<user>/ goes only to its owner (and admins). Gradio's cache is deny by
default: a cached file is served only to the people it was registered to, either because the
studio handed it to them (`Studio.share`) or because they uploaded it (the guard reads each
upload's answer and registers its files to the uploader before the browser sees it).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import bcrypt

from models.files import write_json_atomic

MIN_PASSWORD = 8


class AccountError(ValueError):
    pass


@dataclass
class Accounts:
    path: Path
    users: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Accounts:
        path = Path(path)
        if not path.exists():
            return cls(path, {})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise AccountError(f"{path} is not valid JSON ({err.msg})") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "hash" in v
                                                 for v in data.values()):
            raise AccountError(f"{path} is not a Storyreel accounts file")
        return cls(path, data)

    def add(self, name: str, password: str, admin: bool = False) -> None:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise AccountError("a user name uses letters, digits, '-', '_' and '.' only")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
        digest = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")
        self.users[name] = {"hash": digest, "admin": admin}
        write_json_atomic(self.path, self.users, mode=0o600)

    def check(self, name: str, password: str) -> bool:
        user = self.users.get(name)
        if user is None:
            bcrypt.checkpw(b"x", bcrypt.hashpw(b"y", bcrypt.gensalt(4)))  # same cost either way
            return False
        return bcrypt.checkpw(password.encode("utf-8"), user["hash"].encode("ascii"))

    def is_admin(self, name: str | None) -> bool:
        return bool(name and self.users.get(name, {}).get("admin"))


class FileRegistry:
    """Which user each file handed to the browser belongs to, by Gradio's cache name."""

    def __init__(self) -> None:
        self._owners: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def register(self, path: str | Path, user: str) -> str:
        from gradio.processing_utils import hash_file  # the name Gradio's cache will use

        self.register_key(hash_file(path), user)
        return str(path)

    def register_key(self, cache_key: str, user: str) -> None:
        with self._lock:
            self._owners.setdefault(cache_key, set()).add(user)

    def owners(self, cache_key: str) -> set[str] | None:
        with self._lock:
            return self._owners.get(cache_key)


class FileGuard:
    """ASGI middleware: /file= requests for someone else's outputs get 404."""

    def __init__(self, app: Any, outputs: Path, registry: FileRegistry, accounts: Accounts,
                 cache_dir: Path):
        self.app, self.outputs, self.registry = app, Path(outputs).resolve(), registry
        self.accounts, self.cache_dir = accounts, Path(cache_dir).resolve()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and \
                scope.get("path", "").rstrip("/").endswith("/upload"):
            await self.app(scope, receive, self._registering_uploads(send, self._user(scope)))
            return
        if scope["type"] == "http" and "/file=" in scope.get("path", ""):
            target = unquote(scope["path"].split("/file=", 1)[1])
            if not self.allowed(self._user(scope), target):
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"Not found"})
                return
        await self.app(scope, receive, send)

    def allowed(self, user: str | None, target: str) -> bool:
        if self.accounts.is_admin(user):
            return True
        path = Path(target)
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if path.is_relative_to(self.outputs):
            parts = path.relative_to(self.outputs).parts
            return user is not None and len(parts) > 1 and parts[0] == user
        if path.is_relative_to(self.cache_dir):
            parts = path.relative_to(self.cache_dir).parts
            owners = self.registry.owners(parts[0]) if parts else None
            return owners is not None and user is not None and user in owners
        return True  # Gradio's own rules decide everything else

    def _registering_uploads(self, send: Any, user: str | None) -> Any:
        """A `send` that reads the upload route's answer (the cached paths, as JSON) and
        registers those files to the uploader before the answer reaches the browser."""
        status, body = 0, bytearray()

        async def registering_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200 and user:
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    self._register_uploads(bytes(body), user)
            await send(message)

        return registering_send

    def _register_uploads(self, body: bytes, user: str) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return  # not the list of paths Gradio answers with: nothing was stored
        for path in paths if isinstance(paths, list) else []:
            path = Path(str(path)).resolve()
            if path.is_relative_to(self.cache_dir) and path != self.cache_dir:
                self.registry.register_key(path.relative_to(self.cache_dir).parts[0], user)

    @staticmethod
    def _user(scope: dict[str, Any]) -> str | None:
        app = scope.get("app")
        if app is None or not hasattr(app, "tokens"):
            return None
        cookies = {}
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    key, _, val = part.strip().partition("=")
                    cookies[key] = val
        token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(
            f"access-token-unsecure-{app.cookie_id}")
        return app.tokens.get(token) if token else None
