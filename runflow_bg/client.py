"""RunflowClient: one method per Runflow endpoint, typed results, typed errors, safe retries.

httpx exceptions never leave this module; every failure becomes a RunflowBgError whose message
names no API key and no presigned query string.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from runflow_bg import __version__
from runflow_bg.errors import (
    AuthError,
    InputError,
    InsufficientCredit,
    ProtocolError,
    RunflowBgError,
    RunNotFound,
    UnavailableError,
    UsageError,
)
from runflow_bg.models import (
    Asset,
    Run,
    RunPage,
    clean_text,
    parse_asset,
    parse_error_body,
    parse_run,
    parse_run_page,
    parse_upload_session,
)
from runflow_bg.retry import RetryPolicy, parse_retry_after
from runflow_bg.urls import DEFAULT_BASE_URL, is_allowed_url, normalize_base_url, redact_url

MODEL = "runflow/background-replace"
MAX_UPLOAD_BYTES = 52_428_800
_UPLOAD_SESSIONS = 3
_UPLOAD_CHUNK = 256 * 1024
_NOT_CREATED_STATUSES = frozenset({429, 503})

ByteCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) as a transfer progresses."""


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


def _untrusted_certificate(exc: BaseException) -> bool:
    """True when TLS verification failed: retrying cannot help, a CA bundle can."""
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _describe_transport_error(exc: httpx.TransportError) -> str:
    """A short cause for a network failure; httpx's own text may carry a URL, so it is unused."""
    if _untrusted_certificate(exc):
        return ("its TLS certificate is not trusted (behind a TLS-inspecting proxy, point "
                "SSL_CERT_FILE at your company's CA bundle)")
    causes = [
        (httpx.ConnectTimeout, "the connection timed out"),
        (httpx.ConnectError, "the connection was refused or failed"),
        (httpx.ReadTimeout, "timed out waiting for an answer"),
        (httpx.WriteTimeout, "timed out while sending"),
        (httpx.PoolTimeout, "timed out waiting for a free connection"),
        (httpx.RemoteProtocolError, "the connection dropped before an answer"),
        (httpx.ReadError, "the connection dropped while reading"),
        (httpx.WriteError, "the connection dropped while sending"),
        (httpx.ProxyError, "the proxy refused the connection"),
        (httpx.UnsupportedProtocol, "the URL's scheme is not supported"),
    ]
    for kind, text in causes:
        if isinstance(exc, kind):
            return text
    return "a network error"


def _never_sent(exc: httpx.TransportError) -> bool:
    """True when the request cannot have reached the server (so nothing was created)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _request_id(response: httpx.Response) -> str | None:
    for header in ("Runflow-Request-Id", "X-Request-Id"):
        value = response.headers.get(header)
        if value:
            return clean_text(value, 128)
    return None


def _json_body(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProtocolError(
            f"Runflow's {what} answer is not JSON (HTTP {response.status_code}).",
            request_id=_request_id(response),
        ) from None


class _UploadUrlExpired(Exception):
    """The storage host answered 403: the presigned URL expired; start a new session."""


class RunflowClient:
    """A synchronous client of the Runflow API, safe to share between threads."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        storage_transport: httpx.BaseTransport | None = None,
        log: Callable[[str], None] | None = None,
        trust_env: bool = True,  # False: ignore proxy and CA variables (the --local emulator)
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        if not is_allowed_url(self.base_url):
            raise UsageError(
                f"Refusing the base URL {redact_url(self.base_url)}: it must be https "
                "(plain http is allowed only for loopback addresses).",
                hint="Check --base-url, RUNFLOW_BASE_URL or `runflow-bg config get base_url`.",
            )
        self._api_key = check_api_key(api_key) if api_key else None
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self._log = log
        headers = {"User-Agent": f"runflow-bg/{__version__}", "Accept": "application/json"}
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        http_timeout = httpx.Timeout(timeout, connect=connect_timeout)
        # Only the API client ever holds the key; it never follows redirects elsewhere.
        api_headers = dict(headers)
        if self._api_key:
            api_headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            self._api = httpx.Client(
                base_url=self.base_url + "/v1", headers=api_headers, timeout=http_timeout,
                transport=transport, follow_redirects=False, limits=limits, trust_env=trust_env,
            )
            self._storage = httpx.Client(
                headers=headers, timeout=http_timeout, transport=storage_transport or transport,
                follow_redirects=False, limits=limits, trust_env=trust_env,
            )
        except OSError as exc:  # ssl.SSLError included: a CA bundle that cannot be loaded
            raise UsageError(
                f"Cannot load the CA certificates named by SSL_CERT_FILE or SSL_CERT_DIR "
                f"({exc.strerror or exc}).",
                hint="Point SSL_CERT_FILE at a PEM file of CA certificates, or unset it.",
            ) from None

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._api.close()
        self._storage.close()

    def __enter__(self) -> RunflowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def storage(self) -> httpx.Client:
        """The key-less HTTP client for presigned storage and output URLs."""
        return self._storage

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
                hint="Set RUNFLOW_API_KEY, run `runflow-bg auth login`, or use --local.",
            )

    def error_from_response(self, response: httpx.Response, *, run_id: str | None = None
                            ) -> RunflowBgError:
        """The RunflowBgError an API error answer stands for, built from its body."""
        status = response.status_code
        body = parse_error_body(response.content, _request_id(response))
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
            return AuthError(
                f"Runflow denied the request ({label}){suffix}.",
                hint="The key may lack a scope (runs:create, runs:read, assets:create); "
                     "check it in Runflow's dashboard.", **common)
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

    def _unavailable(self, exc: httpx.TransportError, url: str) -> UnavailableError:
        return UnavailableError(
            f"Could not reach {redact_url(url)}: {_describe_transport_error(exc)}.",
            hint="Check the network and proxy settings (HTTPS_PROXY, NO_PROXY), "
                 "then try again.",
        )

    def _send_with_retries(self, send: Callable[[], httpx.Response], url: str,
                           *, retry_statuses: Callable[[int], bool]) -> httpx.Response:
        """Run `send` until it answers something other than a retryable failure."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = send()
            except httpx.InvalidURL:
                raise ProtocolError(f"Refusing the malformed URL {redact_url(url)}.") from None
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_attempts or _untrusted_certificate(exc):
                    raise self._unavailable(exc, url) from None
                wait = self.retry.delay(attempt)
                self._note(f"{redact_url(url)}: {_describe_transport_error(exc)}; "
                           f"retrying in {wait:.1f}s")
            else:
                if not retry_statuses(response.status_code) or attempt >= self.retry.max_attempts:
                    return response
                wait = self.retry.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                self._note(f"{redact_url(url)}: HTTP {response.status_code}; "
                           f"retrying in {wait:.1f}s")
                response.close()
            self.sleep(wait)

    def _api_call(self, method: str, path: str, *, run_id: str | None = None,
                  what: str = "API", auth: bool = True, **kwargs: Any) -> Any:
        """An API request, retried on network errors, 429 and 5xx; returns the JSON body."""
        if auth:
            self._require_key()
        url = self.base_url + "/v1" + path
        started = time.monotonic()
        response = self._send_with_retries(
            lambda: self._api.request(method, path, **kwargs), url,
            retry_statuses=lambda s: s == 429 or s >= 500,
        )
        self._note(f"{method} {redact_url(url)} -> {response.status_code} "
                   f"({time.monotonic() - started:.2f}s)")
        if not response.is_success:
            raise self.error_from_response(response, run_id=run_id)
        return _json_body(response, what)

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

    def get_run(self, run_id: str) -> Run:
        run_id = run_id.strip()
        if not run_id or "/" in run_id or run_id in (".", ".."):
            raise InputError(f"Invalid run id {run_id!r}.")
        data = self._api_call("GET", f"/runs/{quote(run_id, safe='')}", run_id=run_id,
                              what="run")
        return parse_run(data)

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

    def create_run(self, run_input: dict, *, model: str = MODEL, client_ref: str | None = None,
                   callback_url: str | None = None, metadata: dict | None = None) -> Run:
        """Create a run exactly once.

        429 and 503 mean "not created" and are retried after the wait. After an ambiguous
        failure (timeout, dropped connection, 500/502/504) the run is looked up by its
        client_ref, and created again only if the service has no such run.
        """
        self._require_key()
        client_ref = client_ref or new_client_ref()
        if len(client_ref) > 255 or "'" in client_ref:
            raise UsageError("client_ref must be at most 255 characters, without quotes.")
        path = model_path(model)
        url = self.base_url + "/v1" + path
        body = {"input": run_input, "callback_url": callback_url, "metadata": metadata,
                "client_ref": client_ref}
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                response = self._api.post(path, json=body)
            except httpx.TransportError as exc:
                ambiguous = not _never_sent(exc)
                failure: RunflowBgError = self._unavailable(exc, url)
            else:
                if response.is_success:
                    self._note(f"POST {redact_url(url)} -> {response.status_code}")
                    return parse_run(_json_body(response, "create"))
                if response.status_code < 500 and response.status_code not in _NOT_CREATED_STATUSES:
                    raise self.error_from_response(response)
                ambiguous = response.status_code not in _NOT_CREATED_STATUSES
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                failure = self.error_from_response(response)
            self._note(f"create attempt {attempt} failed: {failure.message}")
            if ambiguous:
                existing = self._lookup_after_ambiguous_create(client_ref, failure)
                if existing is not None:
                    self._note(f"found run {existing.id} created by attempt {attempt}")
                    return existing
            if attempt >= self.retry.max_attempts:
                failure.message += f" No run was created (client_ref {client_ref})."
                raise failure
            self.sleep(self.retry.delay(attempt, retry_after))

    def _lookup_after_ambiguous_create(self, client_ref: str, failure: RunflowBgError
                                       ) -> Run | None:
        try:
            return self.find_run_by_client_ref(client_ref)
        except RunflowBgError as lookup_error:
            raise UnavailableError(
                f"{failure.message} Whether a run was created is unknown: looking it up "
                f"failed too ({lookup_error.message}).",
                hint=f"Check `runflow-bg runs list` for client_ref {client_ref} before "
                     "trying again, so as not to pay twice.",
            ) from None

    # -- uploads ---------------------------------------------------------------------------

    def upload(self, data: bytes, filename: str, mime_type: str = "application/zip",
               on_bytes: ByteCallback | None = None) -> Asset:
        """Upload bytes through the three-step presigned flow and return the confirmed asset."""
        self._require_key()
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputError(
                f"{filename} is {len(data):,} bytes; Runflow accepts at most "
                f"{MAX_UPLOAD_BYTES:,} bytes (50 MiB).",
                hint="Use smaller images.")
        for _ in range(_UPLOAD_SESSIONS):
            session = parse_upload_session(self._api_call(
                "POST", "/asset-uploads", what="upload",
                json={"filename": filename, "mime_type": mime_type, "size_bytes": len(data)}))
            if not is_allowed_url(session.upload_url):
                raise ProtocolError(
                    f"Refusing the upload URL {redact_url(session.upload_url)}: not https.")
            try:
                self._put_to_storage(session.upload_url, data, mime_type, on_bytes)
            except _UploadUrlExpired:
                self._note("upload URL expired; starting a new upload session")
                continue
            asset_path = f"/asset-uploads/{quote(session.asset_id, safe='')}/confirmations"
            return parse_asset(self._api_call("POST", asset_path, json={}, what="confirmation"))
        raise UnavailableError(
            f"The storage host refused {_UPLOAD_SESSIONS} fresh upload URLs in a row (403).",
            hint="Check the machine's clock and try again later.")

    def _put_to_storage(self, upload_url: str, data: bytes, mime_type: str,
                        on_bytes: ByteCallback | None) -> None:
        total = len(data)

        def chunks() -> Iterator[bytes]:
            for start in range(0, total, _UPLOAD_CHUNK):
                chunk = data[start:start + _UPLOAD_CHUNK]
                yield chunk
                if on_bytes:
                    on_bytes(start + len(chunk), total)

        # The presigned URL carries its own credentials: no Authorization header, ever.
        timeout = httpx.Timeout(max(120.0, total / (256 * 1024)), connect=10.0)
        response = self._send_with_retries(
            lambda: self._storage.put(
                upload_url, content=chunks(), timeout=timeout,
                headers={"Content-Type": mime_type, "Content-Length": str(total)}),
            upload_url, retry_statuses=lambda s: s == 429 or s >= 500,
        )
        self._note(f"PUT {redact_url(upload_url)} -> {response.status_code}")
        if response.status_code == 403:
            raise _UploadUrlExpired()
        if not response.is_success:
            raise UnavailableError(
                f"The storage host refused the upload (HTTP {response.status_code}) at "
                f"{redact_url(upload_url)}.")

    def signed_asset_url(self, asset_id: str) -> str:
        """A freshly signed download URL of an uploaded asset."""
        asset = parse_asset(self._api_call("GET", f"/assets/{quote(asset_id, safe='')}",
                                           what="asset"))
        return asset.url
