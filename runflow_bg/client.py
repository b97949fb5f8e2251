"""RunflowClient: one method per Runflow endpoint, typed results, typed errors, safe retries.

Every request goes through the transport's one retry policy; httpx exceptions never leave the
client, transport and transfers; every failure becomes a RunflowBgError whose message names no
API key and no presigned query string.
"""

from __future__ import annotations

import math
import ssl
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from runflow_bg import __version__
from runflow_bg.errors import (
    AuthError,
    CreateUnknown,
    InputError,
    InsufficientCredit,
    ProtocolError,
    RunflowBgError,
    RunNotFound,
    UnavailableError,
    UsageError,
)
from runflow_bg.clock import Clock
from runflow_bg.models import (
    Asset,
    LogLine,
    Run,
    RunPage,
    parse_asset,
    parse_error_body,
    parse_log_page,
    parse_run,
    parse_run_page,
    parse_upload_session,
)
from runflow_bg import transfers
from runflow_bg.transfers import ByteCallback, Fetched, UrlExpired
from runflow_bg.transport import (Reply, RetryPolicy, Transport, Unreachable, parse_retry_after,
                                  unloadable_ca_bundle)
from runflow_bg.urls import DEFAULT_BASE_URL, is_allowed_url, normalize_base_url, redact_url

MODEL = "runflow/background-replace"
MAX_UPLOAD_BYTES = 52_428_800
_UPLOAD_SESSIONS = 3
_NOT_CREATED_STATUSES = frozenset({429, 503})
_LOOKUP_INTERVAL = 2.0
LANE_CONNECTIONS = 16  # connections of one httpx pool at most (see Transport)
_FORBIDDEN_HINTS = {  # what a 403 asks of the user, by its code
    "EMAIL_NOT_VERIFIED": "Confirm your email address (see the message Runflow sent you), "
                          "then try again.",
    "ORGANIZATION_MEMBERSHIP_REQUIRED": "The key's user is not a member of the organisation; "
                                        "ask an admin to add you, or use a key of yours.",
    "ROLE_UNRESOLVED": "Your role in the organisation could not be determined; ask an admin "
                       "to check your membership.",
    "IMPERSONATION_READ_ONLY": "This session can only read; use your own API key to run models.",
    "": "The key may lack a scope (runs:create, runs:read, assets:create); check it in "
        "Runflow's dashboard.",
}


def new_client_ref() -> str:
    """A fresh correlation id for a create, unique across machines and retries."""
    return f"rfbg-{uuid.uuid4()}"


def model_path(model: str) -> str:
    """`/models/<owner>/<name...>/runs` with each segment encoded; empty, . and .. refused."""
    segments = model.split("/")
    if len(segments) < 2 or any(seg in ("", ".", "..") for seg in segments):
        raise UsageError(f"Invalid model id {model!r}; expected owner/name.")
    return "/models/" + "/".join(quote(seg, safe="") for seg in segments) + "/runs"


def check_api_key(api_key: str) -> str:
    """Refuse keys with whitespace or non-printable characters; require no prefix."""
    if not api_key or any(ch.isspace() or not ch.isprintable() for ch in api_key):
        raise AuthError(
            "The API key contains whitespace or non-printable characters.",
            hint="Copy the key again without spaces or line breaks.",
        )
    return api_key


class TrustOnFirstUse(ssl.SSLContext):
    """The TLS context of a client's connections, with httpx's CA certificates (certifi's, or
    those SSL_CERT_FILE or SSL_CERT_DIR name) loaded at the first TLS connection: tens of ms a
    run against the emulator over plain http never spends. httpcore asks a context for ALPN and
    to wrap sockets, which the loaded context does; unloaded, this one trusts nothing."""

    def __new__(cls, trust_env: bool) -> TrustOnFirstUse:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, trust_env: bool) -> None:
        self._trust_env = trust_env
        self._loaded: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def loaded(self) -> ssl.SSLContext:
        with self._lock:
            if self._loaded is None:
                try:
                    self._loaded = httpx.create_ssl_context(trust_env=self._trust_env)
                except OSError as exc:  # ssl.SSLError included: a CA bundle that cannot be loaded
                    raise unloadable_ca_bundle(exc) from None
            return self._loaded

    def set_alpn_protocols(self, protocols: Any) -> None:
        self.loaded().set_alpn_protocols(protocols)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self.loaded().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return self.loaded().wrap_bio(*args, **kwargs)


class RunflowClient:
    """A synchronous client of the Runflow API, safe to share between threads."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        storage_transport: httpx.BaseTransport | None = None,
        log: Callable[[str], None] | None = None,
        trust_env: bool = True,  # False: ignore proxy and CA variables (the --local emulator)
        connections: int = 16,
        create_grace: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        if not is_allowed_url(self.base_url):
            raise UsageError(
                f"Refusing the base URL {redact_url(self.base_url)}: it must be https "
                "(plain http is allowed only for loopback addresses).",
                hint="Check --base-url, RUNFLOW_BASE_URL or `runflow-bg config get base_url`.")
        self._api_key = check_api_key(api_key) if api_key else None
        self.clock = clock or Clock()
        self.create_grace = create_grace
        self._log = log
        policy = retry or RetryPolicy()
        headers = {"User-Agent": f"runflow-bg/{__version__}", "Accept": "application/json"}
        # Only the API client ever holds the key; it never follows redirects elsewhere.
        api_headers = dict(headers)
        if self._api_key:
            api_headers["Authorization"] = f"Bearer {self._api_key}"
        tls = TrustOnFirstUse(trust_env)  # one for both clients
        if self.base_url.startswith("https:"):
            tls.loaded()  # at once: a CA bundle that cannot be loaded stops before anything is sent
        lanes = math.ceil(connections / LANE_CONNECTIONS)  # see Transport
        per_lane = math.ceil(connections / lanes)
        limits = httpx.Limits(max_connections=per_lane * 2, max_keepalive_connections=per_lane)
        api = [httpx.Client(headers=api_headers, transport=transport, follow_redirects=False,
                            limits=limits, trust_env=trust_env, verify=tls)
               for _ in range(lanes)]
        storage = [httpx.Client(headers=headers, transport=storage_transport or transport,
                                follow_redirects=False, limits=limits, trust_env=trust_env,
                                verify=tls) for _ in range(lanes)]
        note = self._note if log else None  # no log: no line built for each request
        self._api = Transport(api, policy, self.clock, attempt_seconds=timeout, log=note,
                              on_retry=on_retry)
        self._storage = Transport(storage, policy, self.clock, attempt_seconds=timeout,
                                  name="The storage host", on_retry=on_retry, log=note)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._api.close()
        self._storage.close()

    def __enter__(self) -> RunflowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _note(self, message: str) -> None:
        if self._log:
            self._log(self._scrub(message))

    def _require_key(self) -> None:
        if not self._api_key:
            raise AuthError(
                "No API key is set.",
                hint="Set RUNFLOW_API_KEY, run `runflow-bg auth login`, or use --local.")

    def error_from_response(self, reply: Reply, *, run_id: str | None = None) -> RunflowBgError:
        """The RunflowBgError an API error answer stands for, built from its body."""
        status = reply.status_code
        body = parse_error_body(reply.content, reply.request_id)
        code = body.code or {401: "UNAUTHORIZED", 402: "INSUFFICIENT_CREDIT",
                             403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                             429: "RATE_LIMITED"}.get(status)
        label = f"{status} {code}" if code else str(status)
        detail = self._scrub(body.describe())
        suffix = f": {detail}" if detail else ""
        common = {"code": code, "status": status, "request_id": body.request_id,
                  "run_id": run_id}
        if status == 401:
            return AuthError(f"Runflow refused the API key ({label}).", **common)
        if status == 403:
            return AuthError(f"Runflow denied the request ({label}){suffix}.",
                             hint=_FORBIDDEN_HINTS.get((code or "").upper(), _FORBIDDEN_HINTS[""]),
                             **common)
        if status == 402:
            return InsufficientCredit(f"Insufficient credit ({label}){suffix}.", **common)
        if status == 404 and run_id:
            return RunNotFound(f"Run {run_id} was not found ({label}).", **common)
        if status in (400, 404, 409, 413, 422):
            return InputError(f"Runflow rejected the request ({label}){suffix}.",
                              hint="Check the inputs named above.", **common)
        if status == 429 or status >= 500:
            return UnavailableError(f"Runflow is unavailable ({label}){suffix}.", **common)
        return ProtocolError(f"Runflow answered with an unexpected HTTP {status}{suffix}.",
                             **common)

    def _api_call(self, method: str, path: str, *, run_id: str | None = None,
                  what: str = "API", auth: bool = True, deadline: float | None = None,
                  **kwargs: Any) -> Any:
        """An API request, retried on network errors, 429 and 5xx; returns the JSON body."""
        if auth:
            self._require_key()
        reply = self._api.request(method, self.base_url + "/v1" + path, what=what,
                                  deadline=deadline, **kwargs)
        if not reply.is_success:
            raise self.error_from_response(reply, run_id=run_id)
        return reply.json(what)

    # -- endpoints -------------------------------------------------------------------------

    def health(self) -> bool:
        """True when the API answers its health check (no key needed)."""
        data = self._api_call("GET", "/health", auth=False, what="health")
        if isinstance(data, dict):
            return data.get("ok") is True or str(data.get("status", "")).lower() == "ok"
        return False

    def me(self) -> dict:
        """The account the key belongs to; the way to check a key."""
        data = self._api_call("GET", "/auth/me", what="account")
        if not isinstance(data, dict):
            raise ProtocolError("Runflow's account answer is not an object.")
        return data

    def balance(self) -> Decimal | None:
        """The account balance in USD, or None when the API does not tell (best effort)."""
        for path in ("/billing/balance", "/credit-balances"):
            try:
                data = self._api_call("GET", path, what="balance")
            except RunflowBgError:
                continue
            value = data.get("balance", data.get("amount")) if isinstance(data, dict) else None
            try:
                return Decimal(str(value)) if value is not None else None
            except InvalidOperation:
                return None
        return None

    def model_price(self, model: str = MODEL) -> Decimal | None:
        """The model's price a request in USD, from its pricing list; None when it names none."""
        path = model_path(model).removesuffix("/runs") + "/pricing"
        data = self._api_call("GET", path, what="pricing")
        items = data.get("items") if isinstance(data, dict) else data
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            if str(item.get("currency_code") or "USD").upper() != "USD":
                continue
            try:
                price = Decimal(str(item.get("price")))
            except InvalidOperation:
                continue
            if price.is_finite() and price >= 0:
                return price
        return None

    def get_run(self, run_id: str, *, deadline: float | None = None) -> Run:
        """The run as the API shows it now; `deadline` bounds retries (a --timeout)."""
        run_id = run_id.strip()
        if not run_id or run_id in (".", ".."):  # other characters are percent-encoded
            raise InputError(f"Invalid run id {run_id!r}.")
        data = self._api_call("GET", f"/runs/{quote(run_id, safe='')}", run_id=run_id,
                              what="run", deadline=deadline)
        return parse_run(data)

    def run_logs(self, run_id: str, *, pages: int = 10) -> list[LogLine]:
        """A run's log lines, oldest first (at most `pages` pages of them)."""
        lines: list[LogLine] = []
        cursor = None
        for _ in range(pages):
            params = {"limit": 100, **({"pq": cursor} if cursor else {})}
            page, cursor = parse_log_page(self._api_call(
                "GET", f"/runs/{quote(run_id, safe='')}/logs", run_id=run_id, what="run log",
                params=params))
            lines.extend(page)
            if not cursor or not page:
                break
        return lines

    def list_runs(self, *, limit: int | None = None, q: str | None = None,
                  cursor: str | None = None, sort_by: str = "created_at:desc") -> RunPage:
        params: dict[str, str | int] = {"sort_by": sort_by}
        if limit is not None:
            params["limit"] = limit
        if q:
            params["q"] = q
        if cursor:
            params["pq"] = cursor
        return parse_run_page(self._api_call("GET", "/runs", params=params, what="run list"))

    def find_run_by_client_ref(self, client_ref: str) -> Run | None:
        """The run created with this client_ref, if the service has one."""
        page = self.list_runs(limit=10, q=f"client_ref.EQ:'{client_ref}'")
        matches = [run for run in page.items if run.client_ref == client_ref]
        return matches[0] if matches else None

    def find_created(self, client_ref: str, within: float) -> Run | None:
        """The run created with this client_ref, looked for again and again for `within` seconds.

        One empty answer proves nothing right after a create (the service may still be writing
        the run), so None means: not found by any lookup made over the whole window.
        """
        clock = self.clock
        until = clock.now() + max(0.0, within)
        while True:
            try:
                found = self.find_run_by_client_ref(client_ref)
            except (UnavailableError, ProtocolError) as exc:
                found = None
                self._note(f"looking up client_ref {client_ref} failed: {exc.message}")
            if found is not None or clock.now() >= until:
                return found
            clock.sleep(min(_LOOKUP_INTERVAL, max(0.0, until - clock.now())))

    def create_run(self, run_input: dict, *, model: str = MODEL, client_ref: str | None = None,
                   callback_url: str | None = None, metadata: dict | None = None) -> Run:
        """Create a run at most once.

        Every attempt carries `Idempotency-Key: <client_ref>`. 429 and 503 mean "not created"
        and are tried again after the policy's wait, as is a request that never reached the
        server. After an ambiguous failure (a timeout, a dropped connection, 500/502/504) or a
        409 the run is looked for over the grace window; found, it is the answer; not found,
        CreateUnknown (exit 9) stops here: creating again on a guess could pay twice.
        """
        self._require_key()
        client_ref = client_ref or new_client_ref()
        if len(client_ref) > 255 or "'" in client_ref:
            raise UsageError("client_ref must be at most 255 characters, without quotes.")
        url = self.base_url + "/v1" + model_path(model)
        body = {"input": run_input, "callback_url": callback_url, "metadata": metadata,
                "client_ref": client_ref}
        headers = {"Idempotency-Key": client_ref}
        policy = self._api.policy
        attempt = 0
        while True:
            attempt += 1
            retry_after, status = None, None
            try:
                reply = self._api.request("POST", url, what="create", attempts=1, json=body,
                                          headers=headers)
            except Unreachable as exc:
                ambiguous = not exc.never_sent
                failure: RunflowBgError = exc
            else:
                if reply.is_success:
                    return parse_run(reply.json("create"))
                status = reply.status_code
                failure = self.error_from_response(reply)
                ambiguous = status >= 500 and status not in _NOT_CREATED_STATUSES or status == 409
                if not ambiguous and status not in _NOT_CREATED_STATUSES:
                    raise failure
                retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            self._note(f"create attempt {attempt} failed: {failure.message}")
            if ambiguous:
                found = self.find_created(client_ref, self.create_grace)
                if found is not None:
                    self._note(f"found run {found.id} created by attempt {attempt}")
                    return found
                raise CreateUnknown(
                    f"{failure.message} Whether a run was created (and paid for) is unknown: "
                    f"no run with client_ref {client_ref} appeared within "
                    f"{self.create_grace:g} s.", code="CREATE_UNKNOWN")
            if attempt >= policy.attempts_for(status):
                failure.message += f" No run was created (client_ref {client_ref})."
                raise failure
            self._api.pause(attempt, retry_after, rate_limited=status == 429)

    # -- uploads and downloads -------------------------------------------------------------

    def upload(self, data: bytes | BinaryIO, filename: str, mime_type: str = "application/zip",
               on_bytes: ByteCallback | None = None) -> Asset:
        """Upload bytes, or a seekable file streamed from its start (again on each attempt),
        through the three-step presigned flow and return the confirmed asset."""
        self._require_key()
        size = len(data) if isinstance(data, bytes) else data.seek(0, 2)
        if size > MAX_UPLOAD_BYTES:
            raise InputError(
                f"{filename} is {size:,} bytes; Runflow accepts at most "
                f"{MAX_UPLOAD_BYTES:,} bytes (50 MiB).",
                hint="Use smaller images.")
        for _ in range(_UPLOAD_SESSIONS):
            session = parse_upload_session(self._api_call(
                "POST", "/asset-uploads", what="upload",
                json={"filename": filename, "mime_type": mime_type, "size_bytes": size}))
            try:
                transfers.put(self._storage, session.upload_url, data, mime_type, on_bytes)
            except UrlExpired:
                self._note("upload URL expired; starting a new upload session")
                continue
            asset_path = f"/asset-uploads/{quote(session.asset_id, safe='')}/confirmations"
            return parse_asset(self._api_call("POST", asset_path, json={}, what="confirmation"))
        raise UnavailableError(
            f"The storage host refused {_UPLOAD_SESSIONS} fresh upload URLs in a row (403).",
            hint="Check the machine's clock and try again later.")

    def download(self, url: str, sink: BinaryIO, on_bytes: ByteCallback | None = None) -> Fetched:
        """Stream an output URL into `sink`, without the key; UrlExpired when it answers 403."""
        return transfers.download(self._storage, url, sink, on_bytes)

    def signed_asset_url(self, asset_id: str) -> str:
        """A freshly signed download URL of an uploaded asset."""
        asset = parse_asset(self._api_call("GET", f"/assets/{quote(asset_id, safe='')}",
                                           what="asset"))
        return asset.url
