"""A batch's contact sheet: one self-contained HTML file with photo, scene and result side by side."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from runflow_bg.fsutil import atomic_write_bytes

THUMBNAIL_PX = 240

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:8px;vertical-align:middle;text-align:left}
img{max-width:240px;max-height:240px;display:block;background:#eee}
.succeeded{color:#11772d}.failed{color:#b3261e}.skipped,.cached{color:#666}
code{font-size:12px;color:#555}
"""


def thumbnail(path: str | Path | None) -> str:
    """An <img> with the image inlined as a small JPEG, or a dash when it cannot be read."""
    if not path:
        return "–"
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=80)
    except (OSError, ValueError):
        return "–"
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="" src="data:image/jpeg;base64,{data}">'


def _state(outcome: dict) -> str:
    if outcome["error"]:
        return "failed"
    if outcome["cached"]:
        return "cached"
    if outcome["skipped"]:
        return "skipped"
    return "succeeded"


def write_report(path: Path, scene: str, outcomes: list[dict], title: str = "runflow-bg batch") -> None:
    """Write the contact sheet for `outcomes` (the JSON shapes of the batch's items)."""
    scene_cell = thumbnail(scene)
    rows = []
    for outcome in outcomes:
        state = _state(outcome)
        result = outcome["outputs"][0]["path"] if outcome["outputs"] else None
        detail = ""
        if outcome["error"]:
            detail = html.escape(outcome["error"]["message"]) + "".join(
                f"<br><code>{html.escape(line)}</code>" for line in outcome["error"].get("log", ()))
        rows.append(
            "<tr>"
            f"<td>{thumbnail(outcome['photo'])}<code>{html.escape(outcome['photo'])}</code></td>"
            f"<td>{scene_cell}</td>"
            f"<td>{thumbnail(result)}<code>{html.escape(result or '')}</code></td>"
            f'<td class="{state}">{state}<br>{detail}</td>'
            f"<td><code>{html.escape(outcome['run_id'] or '')}</code></td>"
            "</tr>")
    document = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><thead><tr><th>photo</th><th>scene</th>"
        "<th>result</th><th>status</th><th>run</th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table></body></html>\n")
    atomic_write_bytes(path, document.encode("utf-8"))
