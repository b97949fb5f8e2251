"""Output downloads: the image behind a signed output URL, or the broken answer an output knob asks for."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from runflow_bg.emulator.faults import Faults
from runflow_bg.emulator.signing import Links
from runflow_bg.emulator.state import State
from runflow_bg.emulator.wire import EXPIRED, Request, Response, storage_error

HUGE_LENGTH = 300_000_000
HUGE_SENT = 4096


def serve_output(request: Request, state: State, faults: Faults, links: Links) -> Response:
    """Checks the signature; the other output knobs apply only to downloads that would succeed."""
    if faults.take("expire", "output"):
        return storage_error(403, *EXPIRED)
    problem = links.check(request.path, request.query)
    if problem:
        return storage_error(403, *problem)
    run = state.run(request.params["run_id"])
    if run is None or not run.is_finished(time.monotonic()) or run.outcome.image is None:
        return storage_error(404, "NoSuchKey", "The specified key does not exist.")
    location = faults.take("redirect", "output")
    if location is not None:
        own_url = f"{links.base_url}{request.path}?{urlencode(request.query)}"
        return Response(302, headers={"Location": location.replace("{url}", own_url)})
    image = run.outcome.image
    headers = {"Content-Type": faults.output_content_type or "image/webp"}
    if "name" in request.params:
        headers["Content-Disposition"] = attachment(request.params["name"])
    if faults.take("huge", "output"):
        return Response(200, (image + bytes(HUGE_SENT))[:HUGE_SENT], headers, declared_length=HUGE_LENGTH)
    if faults.take("truncate", "output"):
        return Response(200, image[:len(image) // 2], headers, declared_length=len(image))
    return Response(200, image, headers)


def attachment(name: str) -> str:
    """A Content-Disposition that echoes the name as is, save what a quoted header string cannot hold."""
    printable = "".join("?" if ord(char) < 0x20 or char == "\x7f" else char for char in name)
    quoted = printable.replace("\\", "\\\\").replace('"', '\\"')
    return f'attachment; filename="{quoted}"'
