"""A batch's contact sheet: one self-contained HTML file with photo, scene and result side by side.

Each row shows what was delivered (format, pixels, bytes) and, with a preset, whether the file
passes it; thumbnails link to the files, transparent ones sit on a checker pattern, the columns
sort on a click, and the totals close the page.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from runflow_bg.fsutil import atomic_write_bytes

THUMBNAIL_PX = 240

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:8px;vertical-align:middle;text-align:left}
th{cursor:pointer;user-select:none} th:after{content:" \\2195";color:#aaa}
img{max-width:240px;max-height:240px;display:block;
 background:repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 0 0/16px 16px}
.succeeded{color:#11772d}.failed{color:#b3261e}.skipped,.cached{color:#666}
.pass{color:#11772d}.fail{color:#b3261e} code{font-size:12px;color:#555}
tfoot td{font-weight:600}
"""

_SORT = """
document.querySelectorAll('th').forEach((th, column) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = [...body.rows];
  const key = row => row.cells[column].dataset.sort ?? row.cells[column].innerText;
  const up = th.dataset.up !== '1'; th.dataset.up = up ? '1' : '0';
  rows.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
    return up ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
}));
"""


def thumbnail(path: str | Path | None, link_from: Path | None = None) -> str:
    """An <img> with the image inlined as a small PNG (alpha kept), linked to the file when
    `link_from` (the report's folder) is given; a dash when it cannot be read."""
    if not path:
        return "–"
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGBA").save(buffer, "PNG", optimize=True)
    except (OSError, ValueError):
        return "–"
    data = base64.b64encode(buffer.getvalue()).decode()
    tag = f'<img alt="" src="data:image/png;base64,{data}">'
    if link_from is None:
        return tag
    target = html.escape(Path(os.path.relpath(Path(path).resolve(), link_from.resolve())).as_posix())
    return f'<a href="{target}">{tag}</a>'


def _state(outcome: dict) -> str:
    if outcome["error"]:
        return "failed"
    if outcome["cached"]:
        return "cached"
    if outcome["skipped"]:
        return "skipped"
    return "succeeded"


def _delivered(path: str | None, preset) -> tuple[str, str]:
    """The delivered file's facts, and the preset's verdict on it (HTML cells)."""
    if not path or not Path(path).is_file():
        return "<td>–</td>", "<td>–</td>"
    from runflow_bg.delivery import describe

    facts = describe(Path(path))
    cell = (f'<td data-sort="{facts["bytes"]}">{html.escape(str(facts["format"]))} · '
            f'{facts["width"]}×{facts["height"]} · {facts["bytes"]:,} bytes</td>')
    if preset is None:
        return cell, "<td>–</td>"
    from runflow_bg.presets import check_file

    problems = check_file(Path(path), preset)
    if not problems:
        return cell, f'<td class="pass">passes {html.escape(preset.name)}</td>'
    lines = "<br>".join(html.escape(problem) for problem in problems)
    return cell, f'<td class="fail">fails {html.escape(preset.name)}:<br>{lines}</td>'


def _scene_cell(cells: dict, scene: str | None, folder: Path) -> str:
    if scene not in cells:
        cells[scene] = thumbnail(scene, folder)
    return cells[scene]


def write_report(path: Path, outcomes: list[dict], title: str = "runflow-bg batch",
                 preset=None) -> None:
    """Write the contact sheet for `outcomes` (the JSON shapes of the batch's items); each
    item's own scene is shown, as a catalogue's rows and a batch's photos may have several."""
    folder = path.parent
    scene_cells: dict[str | None, str] = {}
    rows, counts, total_bytes, passing = [], {}, 0, 0
    for outcome in outcomes:
        state = _state(outcome)
        counts[state] = counts.get(state, 0) + 1
        result = outcome["outputs"][0]["path"] if outcome["outputs"] else None
        detail = ""
        if outcome["error"]:
            detail = html.escape(outcome["error"]["message"]) + "".join(
                f"<br><code>{html.escape(line)}</code>" for line in outcome["error"].get("log", ()))
        delivered, verdict = _delivered(result, preset)
        if result and Path(result).is_file():
            total_bytes += Path(result).stat().st_size
        passing += 'class="pass"' in verdict
        rows.append(
            "<tr>"
            f"<td>{thumbnail(outcome['photo'], folder)}<code>{html.escape(outcome['photo'])}</code></td>"
            f"<td>{_scene_cell(scene_cells, outcome['scene'], folder)}</td>"
            f"<td>{thumbnail(result, folder)}<code>{html.escape(result or '')}</code></td>"
            f"{delivered}{verdict}"
            f'<td class="{state}">{state}<br>{detail}</td>'
            f"<td><code>{html.escape(outcome['run_id'] or '')}</code></td>"
            "</tr>")
    totals = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    verdicts = f"{passing} of {len(outcomes)} pass {html.escape(preset.name)}" if preset else "–"
    document = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><thead><tr><th>photo</th><th>scene</th>"
        "<th>result</th><th>delivered</th><th>preset</th><th>status</th><th>run</th></tr></thead>"
        "<tbody>" + "".join(rows) + "</tbody>"
        f"<tfoot><tr><td>{len(outcomes)} items</td><td></td><td></td>"
        f"<td data-sort=\"{total_bytes}\">{total_bytes:,} bytes</td><td>{verdicts}</td>"
        f"<td>{html.escape(totals)}</td><td></td></tr></tfoot></table>"
        f"<script>{_SORT}</script></body></html>\n")
    atomic_write_bytes(path, document.encode("utf-8"))
