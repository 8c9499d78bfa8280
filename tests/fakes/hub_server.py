"""A fake Hugging Face Hub on 127.0.0.1 that speaks the upload protocol.

The real `huggingface_hub` client is pointed at it (`HfApi(endpoint=...)` or
`HF_ENDPOINT`), so tests exercise the same requests a push to the real Hub
makes: whoami-v2, repo create (409 when it exists), repo info, validate-yaml,
preupload (with `shouldIgnore` and remote `oid`), the LFS batch API with a
basic PUT and a verify call, and the NDJSON commit. Files are kept in memory.

Downloads answer like the Hub's `resolve` endpoint: `HEAD` and `GET
/{repo}/resolve/{revision}/{path}` with `X-Repo-Commit`, `ETag` (git blob sha1,
or for LFS files the sha256 also as `X-Linked-Etag`) and the size; a missing
file is a 404 with `X-Error-Code: EntryNotFound`, which the client (and so
transformers / peft) reads as "this optional file is absent". `seed_folder`
publishes a local folder (e.g. the embedded base model) as a public repo whose
files are read from disk when downloaded.

Failure modes are switched on per route with `FakeHub.fail(...)`: an HTTP
status (401, 403, 5xx), "drop" (close the socket without an answer) or "hang"
(read the request, then answer nothing and keep the connection open), for a
number of requests, so a test can make the Hub fail once and then recover.
A hang ends by itself after `hang_max_s` (then the socket is closed unanswered),
or at once on `release_hangs()` / `stop()`; `wait_for_hang()` lets a test wait
until a request is being held.

Tokens carry scopes like an OAuth token on a Space: creating a repo needs
`manage-repos`, writing to one needs `write-repos`, Jobs need `jobs` (the fake's
reading of the scopes documented for Spaces OAuth).

Dataset repositories (`"type": "dataset"` at create, `/api/datasets/...` routes) are
kept under the key `datasets/<owner>/<name>`. `GET /api/{models|datasets}/{repo}/tree/{rev}`
lists a repo's files (one page) as snapshot_download reads them.

Jobs, with the routes and payloads huggingface_hub 2.4 uses (`_jobs_api.py`,
`HfApi.run_job` / `inspect_job` / `fetch_job_logs` / `cancel_job` / `list_jobs_hardware`):
`GET /api/jobs/hardware`; `POST /api/jobs/{ns}` (the job spec: command, flavor,
secrets, volumes, timeoutSeconds, labels) answering a JobInfo in camelCase with stage
SCHEDULING; `GET /api/jobs/{ns}/{id}`; `POST /api/jobs/{ns}/{id}/cancel`; and
`GET /api/jobs/{ns}/{id}/logs`, an SSE stream (`text/event-stream`, chunked) of
`data: {"data": line, "timestamp": iso}` events opened by a `===== Job started` event,
as the Hub sends them. A test drives a job with `job_update(id, stage=..., logs=[...])`.
A create is refused with 402 when the user has no payment method (`FakeUser.can_pay`),
400 for a flavour not in `HARDWARE`. `fail(..., on="job_logs")` with "cut" sends the
first half of the events then closes the connection without ending the chunked body.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ALL_SCOPES = frozenset({"manage-repos", "write-repos", "jobs"})
# The Hub stores these as LFS whatever their content; binary samples and big
# files go to LFS too, as on the real Hub.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".onnx")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,94}[A-Za-z0-9]$|^[A-Za-z0-9]$")


@dataclass
class FakeUser:
    name: str
    scopes: frozenset = ALL_SCOPES
    can_pay: bool = True  # a payment method or credits on file (Jobs are billed)


def _hw(name, pretty, cents_per_hour, model=None, qty=0, vram=""):
    # The Hub prices Jobs per minute (JobHardwareInfo docstring: unitLabel "minute").
    micro = round(cents_per_hour * 10_000 / 60)
    acc = ({"type": "gpu", "model": model, "quantity": str(qty), "vram": vram, "manufacturer": "Nvidia"}
           if model else None)
    return {"name": name, "prettyName": pretty, "cpu": "8 vCPU", "ram": "32 GB", "ephemeralStorage": "50 GB",
            "accelerator": acc, "unitCostMicroUSD": micro, "unitCostUSD": micro / 1e6, "unitLabel": "minute"}


HARDWARE = [
    _hw("cpu-basic", "CPU Basic", 1),
    _hw("t4-small", "Nvidia T4 - small", 40, "T4", 1, "16 GB"),
    _hw("a10g-small", "Nvidia A10G - small", 100, "A10G", 1, "24 GB"),
    _hw("a100-large", "Nvidia A100 - large", 250, "A100", 1, "80 GB"),
    _hw("h200x8", "Nvidia 8xH200", 4000, "H200", 8, "1128 GB"),
]


@dataclass
class FakeJob:
    id: str
    owner: str
    spec: dict
    stage: str = "SCHEDULING"
    message: str | None = None
    created_at: float = field(default_factory=time.time)
    logs: list = field(default_factory=list)  # (iso timestamp, line)


@dataclass
class FakeRepo:
    repo_id: str
    owner: str
    private: bool
    files: dict = field(default_factory=dict)  # path -> bytes (or a Path read when downloaded)
    commits: list = field(default_factory=list)  # dicts: oid, summary, paths
    head: str = "0" * 40


@dataclass
class Failure:
    route: str
    status: object  # int, "drop" or "hang"
    times: int


def git_blob_sha1(data: bytes) -> str:
    # The preupload `oid` of a regular file is its git blob hash, which the
    # client compares with its own to skip unchanged files.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """In-memory Hub. Use as a context manager or call start()/stop()."""

    def __init__(self, users: dict | None = None, hang_max_s: float = 60.0):
        # token -> FakeUser
        self.users: dict[str, FakeUser] = dict(users or {"hf_test_good_token": FakeUser("learner")})
        self.repos: dict[str, FakeRepo] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.etags: dict[tuple, str] = {}  # (repo, commit, path) -> etag of a downloaded file
        self.requests: list[dict] = []  # method, route, path, token
        self.failures: list[Failure] = []
        self._lock = threading.Lock()
        self.hang_max_s = hang_max_s
        self.hanging = 0  # requests held by "hang" right now
        self._hang_started = threading.Event()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- control -------------------------------------------------------------
    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.release_hangs()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def seed_folder(self, repo_id: str, folder: Path) -> None:
        """A public repo holding the files of a local folder (not copied: read on download)."""
        owner = repo_id.split("/")[0]
        files = {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        with self._lock:
            self.repos[repo_id] = FakeRepo(repo_id, owner, False, files=files,
                                           head=hashlib.sha1(repo_id.encode()).hexdigest())

    def add_user(self, token: str, name: str, scopes=ALL_SCOPES) -> None:
        self.users[token] = FakeUser(name, frozenset(scopes))

    def fail(self, status, on: str = "create", times: int = 1) -> None:
        """Answer the next `times` requests to route `on` with `status` ("drop" closes the socket,
        "hang" never answers)."""
        with self._lock:
            self.failures.append(Failure(on, status, times))

    def clear_failures(self) -> None:
        with self._lock:
            self.failures.clear()

    def wait_for_hang(self, timeout: float) -> bool:
        """True once a request is being held by "hang" (False if none arrived within `timeout`)."""
        return self._hang_started.wait(timeout)

    def release_hangs(self) -> None:
        """End every hang now: the held connections are closed without an answer."""
        self._release.set()

    def job_update(self, job_id: str, *, stage: str | None = None, message: str | None = None,
                   logs: list[str] = (), created_at: float | None = None) -> FakeJob:
        """Move a job on, as the Hub's scheduler and the job's output would."""
        with self._lock:
            job = self.jobs[job_id]
            job.stage = stage or job.stage
            job.message = message if message is not None else job.message
            job.created_at = created_at if created_at is not None else job.created_at
            for line in logs:
                job.logs.append((_iso(time.time()), line))
        return job

    def routes_called(self) -> list[str]:
        return [r["route"] for r in self.requests]

    # -- used by the handler ---------------------------------------------------
    def _take_failure(self, route: str):
        with self._lock:
            for failure in self.failures:
                if failure.route == route and failure.times > 0:
                    failure.times -= 1
                    return failure.status
        return None


FORCED_MESSAGES = {
    400: "Bad request",
    401: "Invalid credentials in Authorization header",
    402: "Payment required: add a payment method or credits to run this job",
    403: "This token is missing a scope needed for this action.",
    429: "You have exceeded our hourly quotas for action: jobs. Please retry later.",
}


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # -- plumbing ----------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _send(self, status: int, payload=None, headers: dict | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has headers only
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        headers = {"X-Error-Message": message, **(headers or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _drop(self) -> None:
        # "Nothing at all": close the socket without writing a status line.
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _hang(self) -> None:
        # "Accepts and never answers": the request was read; nothing is written
        # until the hang ends by itself or is released, then the socket closes.
        with self.hub._lock:
            self.hub.hanging += 1
        self.hub._hang_started.set()
        try:
            self.hub._release.wait(self.hub.hang_max_s)
        finally:
            with self.hub._lock:
                self.hub.hanging -= 1
        self._drop()

    def _user(self) -> FakeUser | None:
        token = self._token()
        return self.hub.users.get(token) if token else None

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self._body()
        route, args = _route(method, path)
        self.hub.requests.append(
            {"method": method, "route": route, "path": path, "token": self._token()}
        )
        forced = self.hub._take_failure(route)
        if forced == "drop":
            return self._drop()
        if forced == "hang":
            return self._hang()
        self.cut = forced == "cut"
        if isinstance(forced, int):
            if forced in FORCED_MESSAGES:
                return self._error(forced, FORCED_MESSAGES[forced])
            return self._error(forced, "Internal Error - We're working hard to fix this as soon as possible!")
        if route == "unknown":
            return self._error(404, f"no route for {method} {path}")
        handler = getattr(self, "_h_" + route)
        return handler(body, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_HEAD(self) -> None:  # the client's file metadata calls (resolve; otherwise 404 or a failure mode)
        self._dispatch("HEAD")

    # -- routes --------------------------------------------------------------------
    def _h_whoami(self, body) -> None:
        user = self._user()
        if user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        self._send(200, {
            "type": "user", "id": "0" * 24, "name": user.name, "fullname": user.name.title(),
            "email": None, "avatarUrl": f"{self.hub.url}/avatars/{user.name}.png", "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "fineGrained"}},
            "scopes": sorted(user.scopes),
        })

    def _h_create(self, body) -> None:
        user = self._user()
        if user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        payload = json.loads(body or b"{}")
        name, namespace = payload.get("name") or "", payload.get("organization") or user.name
        repo_id = f"{namespace}/{name}"
        if not NAME_RE.match(name) or "--" in name or ".." in name:
            return self._error(400, "Invalid repo name")
        if namespace != user.name:
            return self._error(403, f"You don't have the rights to create a model under the namespace \"{namespace}\"")
        if "manage-repos" not in user.scopes:
            return self._error(403, "This token does not have the manage-repos scope needed to create a repo")
        if payload.get("type") == "dataset":
            repo_id = f"datasets/{repo_id}"
        url = f"{self.hub.url}/{repo_id}"
        with self.hub._lock:
            if repo_id in self.hub.repos:
                # The real Hub's 409 body carries the url; the client reads it with exist_ok=True.
                return self._send(409, {"error": "You already created this model repo", "url": url})
            self.hub.repos[repo_id] = FakeRepo(repo_id, user.name, payload.get("visibility") == "private")
        self._send(200, {"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def _readable_repo(self, repo_id: str) -> FakeRepo | None:
        repo = self.hub.repos.get(repo_id)
        user = self._user()
        if repo is None or (repo.private and (user is None or user.name != repo.owner)):
            return None
        return repo

    def _writable_repo(self, repo_id: str):
        """-> (repo, None) or (None, error already sent)."""
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None, True
        repo = self._readable_repo(repo_id)
        if repo is None:
            self._error(404, "Repository not found", code="RepoNotFound")
            return None, True
        if user.name != repo.owner or "write-repos" not in user.scopes:
            self._error(403, "This token does not have the write-repos scope needed to write to this repo")
            return None, True
        return repo, False

    def _h_repo_info(self, body, repo_id, _revision=None) -> None:
        repo = self._readable_repo(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", code="RepoNotFound")
        self._send(200, {
            "id": repo_id, "modelId": repo_id, "sha": repo.head, "private": repo.private,
            "siblings": [{"rfilename": p} for p in sorted(repo.files)],
        })

    def _h_tree(self, body, repo_id, revision, _folder=None) -> None:
        """The recursive file listing snapshot_download reads (one page: no Link header)."""
        repo = self._readable_repo(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", code="RepoNotFound")
        if revision not in ("main", repo.head):
            return self._error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        entries = []
        for path, stored in sorted(repo.files.items()):
            data = stored.read_bytes() if isinstance(stored, Path) else stored
            lfs = path.endswith(LFS_SUFFIXES) or len(data) >= LFS_SIZE_THRESHOLD
            entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
            if lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        self._send(200, entries)

    def _h_resolve(self, body, repo_id, revision, path) -> None:
        """HEAD/GET of a file, as the Hub's resolve endpoint answers it (no redirect: served here)."""
        repo = self._readable_repo(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", code="RepoNotFound")
        if revision not in ("main", repo.head):
            return self._error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        stored = repo.files.get(path)
        commit = {"X-Repo-Commit": repo.head}
        if stored is None:
            return self._error(404, "Entry not found", code="EntryNotFound", headers=commit)
        data = stored.read_bytes() if isinstance(stored, Path) else stored
        lfs = path.endswith(LFS_SUFFIXES) or len(data) >= LFS_SIZE_THRESHOLD
        key = (repo_id, repo.head, path)
        etag = self.hub.etags.get(key) or (hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data))
        self.hub.etags[key] = etag
        headers = {**commit, "ETag": f'"{etag}"', "Content-Length": str(len(data)),
                   "Content-Type": "application/octet-stream"}
        if lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)

    def _h_validate_yaml(self, body) -> None:
        # The real endpoint validates model-card metadata; the client only reads the lists.
        self._send(200, {"errors": [], "warnings": []})

    def _h_preupload(self, body, repo_id, _revision) -> None:
        repo, sent = self._writable_repo(repo_id)
        if sent:
            return
        answer = []
        for item in json.loads(body or b"{}").get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            size = int(item.get("size", 0))
            path = item["path"]
            lfs = path.endswith(LFS_SUFFIXES) or size >= LFS_SIZE_THRESHOLD or b"\0" in sample
            existing = repo.files.get(path)
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_blob_sha1(existing)
            answer.append({"path": path, "uploadMode": "lfs" if lfs else "regular",
                           "shouldIgnore": False, "oid": oid})
        self._send(200, {"files": answer})

    def _h_lfs_batch(self, body, repo_id) -> None:
        repo, sent = self._writable_repo(repo_id)
        if sent:
            return
        payload = json.loads(body or b"{}")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size}
            if oid not in self.hub.lfs_store:
                # Like S3 presigned URLs, the upload href carries no auth.
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{oid}"},
                    "verify": {"href": f"{self.hub.url}/lfs-verify/{oid}"},
                }
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects})

    def _h_lfs_put(self, body, oid) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self._error(400, "content does not match oid")
        with self.hub._lock:
            self.hub.lfs_store[oid] = body
        self._send(200)

    def _h_lfs_verify(self, body, oid) -> None:
        payload = json.loads(body or b"{}")
        stored = self.hub.lfs_store.get(oid)
        if self._user() is None:
            return self._error(401, "Invalid credentials in Authorization header")
        if stored is None or len(stored) != int(payload.get("size", -1)) or payload.get("oid") != oid:
            return self._error(404, "object not found")
        self._send(200, {"oid": oid, "size": len(stored)})

    def _h_commit(self, body, repo_id, _revision) -> None:
        repo, sent = self._writable_repo(repo_id)
        if sent:
            return
        header, changes = None, {}
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "only base64 file content is supported")
                changes[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = self.hub.lfs_store.get(value.get("oid"))
                if data is None or len(data) != int(value.get("size", -1)):
                    return self._error(422, f"LFS object for {value.get('path')} was never uploaded")
                changes[value["path"]] = data
            else:
                return self._error(400, f"unsupported commit operation {key!r}")
        if header is None or not header.get("summary"):
            return self._error(400, "commit header with a summary is required")
        with self.hub._lock:
            repo.files.update(changes)
            oid = hashlib.sha1(f"{repo.head}{sorted(changes)}{len(repo.commits)}".encode()).hexdigest()
            repo.head = oid
            repo.commits.append({"oid": oid, "summary": header["summary"], "paths": sorted(changes)})
        self._send(200, {"commitOid": oid, "commitUrl": f"{self.hub.url}/{repo_id}/commit/{oid}",
                         "success": True})


    # -- jobs ----------------------------------------------------------------------
    def _jobs_user(self, namespace: str):
        """-> (user, None) or (None, error already sent): a token with the `jobs` scope, in its own namespace."""
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None, True
        if "jobs" not in user.scopes:
            self._error(403, "This token does not have the jobs scope needed to run jobs")
            return None, True
        if namespace != user.name:
            self._error(403, f"You don't have the rights to run jobs under the namespace \"{namespace}\"")
            return None, True
        return user, False

    def _job_json(self, job: FakeJob) -> dict:
        spec = job.spec
        return {
            "id": job.id, "createdAt": _iso(job.created_at), "dockerImage": spec.get("dockerImage"),
            "spaceId": spec.get("spaceId"), "command": spec.get("command"), "arguments": spec.get("arguments"),
            "environment": spec.get("environment"), "secrets": {k: None for k in spec.get("secrets") or {}},
            "flavor": spec.get("flavor"), "labels": spec.get("labels"), "volumes": spec.get("volumes"),
            "status": {"stage": job.stage, "message": job.message},
            "owner": {"id": "0" * 24, "name": job.owner, "type": "user"},
        }

    def _own_job(self, namespace: str, job_id: str):
        user, sent = self._jobs_user(namespace)
        if sent:
            return None
        job = self.hub.jobs.get(job_id)
        if job is None or job.owner != user.name:
            self._error(404, "Job not found")
            return None
        return job

    def _h_jobs_hardware(self, body) -> None:
        self._send(200, HARDWARE)

    def _h_job_create(self, body, namespace) -> None:
        user, sent = self._jobs_user(namespace)
        if sent:
            return
        spec = json.loads(body or b"{}")
        if spec.get("flavor") not in {h["name"] for h in HARDWARE}:
            return self._error(400, f"Invalid flavor: {spec.get('flavor')}")
        if not user.can_pay and spec.get("flavor") != "cpu-basic":
            return self._error(402, FORCED_MESSAGES[402])
        job = FakeJob(secrets.token_hex(12), user.name, spec)
        with self.hub._lock:
            self.hub.jobs[job.id] = job
        self._send(200, self._job_json(job))

    def _h_job_inspect(self, body, namespace, job_id) -> None:
        job = self._own_job(namespace, job_id)
        if job is not None:
            self._send(200, self._job_json(job))

    def _h_job_cancel(self, body, namespace, job_id) -> None:
        job = self._own_job(namespace, job_id)
        if job is not None:
            self.hub.job_update(job_id, stage="CANCELED")
            self._send(200, {})

    def _h_job_logs(self, body, namespace, job_id) -> None:
        """The Hub's SSE log stream: chunked `data: {...}` events (a "cut" stops halfway, unterminated)."""
        job = self._own_job(namespace, job_id)
        if job is None:
            return
        with self.hub._lock:
            events = [(_iso(job.created_at), f"===== Job started at {_iso(job.created_at)} =====")]
            events += list(job.logs) if job.stage != "SCHEDULING" else []
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.cut:
            events = events[: max(1, len(events) // 2)]
        for stamp, line in events:
            data = f"data: {json.dumps({'data': line, 'timestamp': stamp})}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        if self.cut:
            return self._drop()
        self.wfile.write(b"0\r\n\r\n")


_REPO = r"([^/]+/[^/]+?)"
_PATTERNS = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/([^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/([^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/revision/([^/]+)$"), "repo_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}$"), "repo_info"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/tree/([^/]+)(?:/(.*))?$"), "tree"),
    ("POST", re.compile(rf"^/{_REPO}\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("PUT", re.compile(r"^/lfs-upload/([0-9a-f]{64})$"), "lfs_put"),
    ("POST", re.compile(r"^/lfs-verify/([0-9a-f]{64})$"), "lfs_verify"),
    ("HEAD", re.compile(rf"^/{_REPO}/resolve/([^/]+)/(.+)$"), "resolve"),
    ("GET", re.compile(rf"^/{_REPO}/resolve/([^/]+)/(.+)$"), "resolve"),
    ("GET", re.compile(r"^/api/jobs/hardware$"), "jobs_hardware"),
    ("POST", re.compile(r"^/api/jobs/([^/]+)$"), "job_create"),
    ("GET", re.compile(r"^/api/jobs/([^/]+)/([^/]+)$"), "job_inspect"),
    ("GET", re.compile(r"^/api/jobs/([^/]+)/([^/]+)/logs$"), "job_logs"),
    ("POST", re.compile(r"^/api/jobs/([^/]+)/([^/]+)/cancel$"), "job_cancel"),
]
# Dataset repositories: the same handlers, with the repo keyed "datasets/<owner>/<name>".
_DATASET_PATTERNS = [
    ("POST", re.compile(rf"^/api/datasets/{_REPO}/preupload/([^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/datasets/{_REPO}/commit/([^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/datasets/{_REPO}/revision/([^/]+)$"), "repo_info"),
    ("GET", re.compile(rf"^/api/datasets/{_REPO}$"), "repo_info"),
    ("GET", re.compile(rf"^/api/datasets/{_REPO}/tree/([^/]+)(?:/(.*))?$"), "tree"),
    ("POST", re.compile(rf"^/datasets/{_REPO}\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("HEAD", re.compile(rf"^/datasets/{_REPO}/resolve/([^/]+)/(.+)$"), "resolve"),
    ("GET", re.compile(rf"^/datasets/{_REPO}/resolve/([^/]+)/(.+)$"), "resolve"),
]


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _route(method: str, path: str):
    from urllib.parse import unquote

    for verb, pattern, name in _DATASET_PATTERNS:
        match = pattern.match(path)
        if verb == method and match:
            groups = [unquote(g or "") for g in match.groups()]
            return name, ("datasets/" + groups[0], *groups[1:])
    for verb, pattern, name in _PATTERNS:
        match = pattern.match(path)
        if verb == method and match:
            return name, tuple(unquote(g or "") for g in match.groups())
    return "unknown", ()
