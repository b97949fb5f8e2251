"""Property-based tests: the tolerant parsers and the file-name sanitizer hold for any input."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

from hypothesis import given, settings, strategies as st

from runflow_bg.errors import ProtocolError
from runflow_bg.models import classify_status, extract_output_urls, parse_error_body, parse_run, parse_run_page
from runflow_bg.naming import check_template, output_path, render, safe_component

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
run_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(min_size=1, max_size=40),
        "run_id": json_values,
        "status_code": json_values | st.sampled_from(["queued", "running", "succeeded", "failed",
                                                     "partial_succeeded", "cancelled", "weird"]),
        "status": json_values,
        "output": json_values,
        "error": json_values,
        "cost": json_values,
        "duration_ms": json_values,
        "metadata": json_values,
        "client_ref": json_values,
        "failure_message": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(run_like)
def test_parse_run_only_ever_raises_protocol_error(data):
    try:
        run = parse_run(data)
    except ProtocolError as exc:
        assert exc.exit_code == 1 and exc.message
        return
    assert isinstance(run.id, str) and run.id
    assert all(isinstance(url, str) for url in run.output_urls)
    assert all(ord(ch) >= 32 for ch in run.id + run.status + (run.failure_message or ""))
    assert run.state is classify_status(run.status)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_outputs_and_pages_only_ever_raise_protocol_error(data):
    for parse in (extract_output_urls, parse_run_page):
        try:
            parse(data)
        except ProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_error_bodies_never_fail_to_parse(content):
    body = parse_error_body(content)
    text = body.describe()
    assert isinstance(text, str) and all(ord(ch) >= 32 for ch in text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=1200))
def test_safe_component_is_one_harmless_name(text):
    name = safe_component(text)
    assert name and len(name) <= 120
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert all(ord(ch) >= 32 and not 0x7f <= ord(ch) <= 0x9f for ch in name)


@settings(max_examples=300, deadline=None)
@given(stem=st.text(max_size=300), scene=st.text(max_size=300), run_id=st.text(max_size=300),
       ext=st.text(max_size=30), index=st.integers(min_value=0, max_value=50),
       template=st.sampled_from(["{stem}-bg{n}.{ext}", "{scene}/{stem}{n}.{ext}", "{run}.{ext}",
                                 "x/{stem}/{scene}/{run}{n}.{ext}", "./{stem}//.{ext}",
                                 "a/./{stem:/>9}/.{ext}", "{scene!r}{n:>3}.{ext!a}"]))
def test_rendered_names_stay_inside_the_output_folder(tmp_path_factory, stem, scene, run_id, ext,
                                                      index, template):
    root = tmp_path_factory.getbasetemp() / "out"
    relative = render(check_template(template), stem=stem, scene=scene, index=index, run_id=run_id,
                      ext=ext)
    path = output_path(root, relative).resolve()
    assert root.resolve() in path.parents
    assert ".." not in Path(relative).parts and not Path(relative).is_absolute()
    assert os.path.normpath(relative) == relative, "joined to a folder without normpath"
    assert "/" in template or "/" not in relative, "only the template makes subfolders"
    assert all(ch in string.printable or ord(ch) > 0x9f for ch in relative)
