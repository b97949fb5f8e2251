"""What the API takes as an asset: upload MIME types, and `runflow://assets/` refs or `data:` URIs as inputs.

The SDK prefers refs for model inputs and the API resolves them to freshly signed URLs at dispatch;
small `data:` URIs are stored as assets on write. Both end up as the emulator's own signed asset URL,
which the run then fetches from the store.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import NoReturn
from urllib.parse import unquote

from runflow_bg.emulator.faults import Faults
from runflow_bg.emulator.signing import Links
from runflow_bg.emulator.state import Asset, Blob, State
from runflow_bg.emulator.wire import Reject, api_error

# Windows labels zips application/x-zip-compressed; the SDK declares octet-stream for untyped files.
ASSET_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream",
               "image/png", "image/jpeg", "image/webp")
MAX_UPLOAD_BYTES = 52_428_800
MAX_INLINE_BYTES = 1024 * 1024
REF_PREFIX = "runflow://assets/"
INLINE_FILENAME = "inputs.zip"
_DATA_URI = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<payload>.*)", re.S | re.I)


def accepted_types(faults: Faults) -> tuple[str, ...]:
    """The MIME types uploads may declare: the documented list, or the narrower one a knob sets."""
    return faults.asset_types or ASSET_TYPES


def resolve_zip_url(data: dict, state: State, links: Links, faults: Faults) -> None:
    """Replace a ref or `data:` URI in a create body's `input.zip_url` by the asset's signed URL.

    An unknown or unconfirmed ref, or a `data:` URI that is not a small base64 file of an accepted
    type, is refused with a 422; any other value is left for the create's own checks.
    """
    run_input = data.get("input")
    url = run_input.get("zip_url") if isinstance(run_input, dict) else None
    if not isinstance(url, str):
        return
    scheme = url.partition(":")[0].lower()
    if scheme == "data":
        asset = _store_inline(url, state, accepted_types(faults))
    elif scheme == "runflow":
        asset = _referenced(url, state)
    else:
        return
    run_input["zip_url"] = links.asset_url(asset.id, asset.filename)


def _referenced(ref: str, state: State) -> Asset:
    asset_id = ref[len(REF_PREFIX):] if ref.startswith(REF_PREFIX) else ""
    asset = state.asset(asset_id) if asset_id and "/" not in asset_id else None
    if asset is None or not asset.confirmed:
        _refuse(f"asset not found or expired: {ref}")
    return asset


def _store_inline(uri: str, state: State, types: tuple[str, ...]) -> Asset:
    match = _DATA_URI.fullmatch(uri)
    params = [param.strip().lower() for param in match["params"].split(";")] if match else []
    if "base64" not in params:
        _refuse("a data: URI must be base64, like data:application/zip;base64,...")
    mime_type = match["type"].strip().lower()
    if mime_type not in types:
        _refuse(f"a data: URI's type must be one of {', '.join(types)}")
    try:
        content = base64.b64decode(unquote(match["payload"]), validate=True)
    except binascii.Error:
        _refuse("a data: URI's payload is not valid base64")
    if not content:
        _refuse("a data: URI's payload is empty")
    if len(content) > MAX_INLINE_BYTES:
        _refuse("a data: URI may hold at most 1 MiB; upload larger files and pass their ref")
    asset = Asset(INLINE_FILENAME, mime_type, len(content), data=Blob(content), confirmed=True)
    state.add_asset(asset)
    return asset


def _refuse(message: str) -> NoReturn:
    raise Reject(api_error(422, "VALIDATION_ERROR", message, [{"field": "input.zip_url", "msg": message}]))
