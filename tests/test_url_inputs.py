"""Photos and scenes given by URL: fetched over https from a host on loopback (a throwaway CA
trusted through SSL_CERT_FILE), cached, revalidated, capped, and never sent the key."""

from __future__ import annotations

import gzip
import io
import json
import socket

import httpx
import pytest

from helpers import KEY, cli_env, run_cli, write_photo, write_scene
from image_host import ImageHost
from runflow_bg.emulator import Emulator
from runflow_bg.naming import input_stem, url_file_name
from runflow_bg.transport import Unreachable, describe_transport_error

SIGNATURE = "X-Amz-Signature=0ddba11c0ffee"


def image_bytes(fmt="PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    write_photo(buffer, fmt=fmt, **kwargs)
    return buffer.getvalue()


def scene_bytes(tmp_path) -> bytes:
    return write_scene(tmp_path / "scene.jpg").read_bytes()


@pytest.fixture
def emu():
    """The emulator, with runs that finish at once: what is tested here is the fetching."""
    with Emulator(api_key=KEY, run_seconds=0.01) as server:
        yield server


@pytest.fixture
def host(emu):
    """The image host; each request notes how many runs the emulator had created by then."""
    with ImageHost(observe=lambda: emu.created_run_count) as server:
        yield server


@pytest.fixture
def env(emu, isolated_env, host):
    return cli_env(emu.base_url, isolated_env, SSL_CERT_FILE=host.ca_file)


def output_of(result) -> str:
    return result.stdout.decode() + result.stderr.decode()


def test_replace_fetches_an_https_photo_and_names_the_output_after_its_url(emu, host, work, env):
    url = host.put("/catalogue/red%20bottle.png", image_bytes()) + "?" + SIGNATURE
    result = run_cli("replace", url, "marble.jpg", "-o", "out", "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["photo"] == host.url("/catalogue/red%20bottle.png")
    assert data["outputs"][0]["path"] == "out/red bottle-bg.webp"
    assert (work / "out" / "red bottle-bg.webp").is_file()
    assert f"checked {host.url('/catalogue/red%20bottle.png')} (160x120 PNG)" in \
        result.stderr.decode()
    assert len(emu.runs()) == 1
    assert [seen.status for seen in host.seen()] == [200]


def test_the_api_key_never_reaches_the_image_host_nor_a_redirect(emu, host, work, env):
    host.put("/p.png", image_bytes())
    moved = host.put("/moved.png", status=302, headers={"Location": "/p.png"})
    scene = host.put("/beach.png", scene_bytes(work))
    result = run_cli("replace", moved, scene, "-o", "out", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "out/moved-bg.webp\n"
    assert [seen.path for seen in host.seen()] == ["/beach.png", "/moved.png", "/p.png"]
    assert emu.count("run_create") == 1 and emu.requests[0].had_authorization
    for seen in host.seen():
        assert "authorization" not in {name.lower() for name in seen.headers}
        assert not any(KEY in value for value in seen.headers.values())


def test_a_signed_query_is_never_printed_nor_stored(emu, host, work, env, isolated_env):
    url = host.put("/p.png", image_bytes(), etag='"v1"') + "?" + SIGNATURE
    gone = host.url("/gone.png") + "?" + SIGNATURE
    scene = host.put("/beach.png", scene_bytes(work)) + "?" + SIGNATURE
    (work / "items.jsonl").write_text(json.dumps({"photo": url, "scene": scene}) + "\n")
    results = [run_cli("replace", url, "marble.jpg", "-o", "out", "-v", "--json", env=env,
                       cwd=work),
               run_cli("replace", gone, "marble.jpg", "--json", env=env, cwd=work),
               run_cli("batch", url, gone, "--scene", "marble.jpg", "-o", "more", "--yes",
                       "--json", "--report", "report.html", env=env, cwd=work),
               run_cli("batch", "--manifest", "items.jsonl", "-o", "rows", "--yes", "--json",
                       env=env, cwd=work)]
    assert [result.returncode for result in results] == [0, 4, 6, 0]
    assert json.loads(results[1].stdout)["photo"] == host.url("/gone.png")
    for result in results:
        assert "0ddba11c0ffee" not in output_of(result)
    kept = [path for path in [*isolated_env.rglob("*"), *work.rglob("*")]
            if path.is_file() and path.name != "items.jsonl"]  # the manifest given holds it
    assert any(path.parent.name == "inputs" for path in kept), "the photo was kept in the cache"
    for path in kept:
        assert b"0ddba11c0ffee" not in path.read_bytes(), path
    assert all("0ddba11c0ffee" in seen.path for seen in host.seen("/p.png"))
    inputs = isolated_env / "cache" / "inputs"
    assert inputs.stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in inputs.iterdir()} == {0o600}


def test_a_manifest_row_with_an_https_photo(emu, host, work, env):
    url = host.put("/feed/lamp.png", image_bytes()) + "?" + SIGNATURE
    (work / "items.csv").write_text(f"photo,sku\n{url},L-2\n")
    result = run_cli("batch", "--manifest", "items.csv", "--scene", "marble.jpg", "-o", "out",
                     "--name", "{stem}-{sku}.{ext}", "--yes", "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    line = json.loads(result.stdout)
    assert line["photo"] == host.url("/feed/lamp.png") and line["row"] == 2
    assert line["outputs"][0]["path"] == "out/lamp-L-2.webp"
    assert (work / "out" / "lamp-L-2.webp").is_file()
    assert len(emu.runs()) == 1


def test_a_url_used_twice_in_one_command_is_fetched_once(emu, host, work, env):
    photo = host.put("/p.png", image_bytes())
    scene = host.put("/beach.png", scene_bytes(work))
    (work / "items.csv").write_text(f"photo,scene,out\n{photo},{scene},a\n{photo},{scene},b\n")
    result = run_cli("batch", "--manifest", "items.csv", "-o", "out", "--yes", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert (work / "out" / "a" / "p-bg.webp").is_file() and (work / "out" / "b" / "p-bg.webp").is_file()
    assert len(host.seen("/p.png")) == 1 and len(host.seen("/beach.png")) == 1
    assert len(emu.runs()) == 1, "the same photo and scene are one request"


@pytest.mark.parametrize("validator, header", [
    ({"etag": '"v1"'}, "If-None-Match"),
    ({"last_modified": "Wed, 01 Jan 2025 00:00:00 GMT"}, "If-Modified-Since"),
])
def test_a_later_command_revalidates_and_reuses_the_kept_copy_on_304(emu, host, work, env,
                                                                     validator, header):
    url = host.put("/p.png", image_bytes(), **validator)
    first = run_cli("replace", url, "marble.jpg", "-o", "one", env=env, cwd=work)
    second = run_cli("replace", url, "marble.jpg", "-o", "two", "--json", env=env, cwd=work)
    assert first.returncode == 0 and second.returncode == 0, second.stderr.decode()
    seen = host.seen("/p.png")
    assert [s.status for s in seen] == [200, 304]
    assert header not in seen[0].headers and seen[1].headers[header] == list(validator.values())[0]
    assert json.loads(second.stdout)["cached"] is True and len(emu.runs()) == 1


def test_a_copy_without_validators_is_reused_and_no_cache_fetches_it_afresh(emu, host, work,
                                                                          env):
    url = host.put("/p.png", image_bytes())
    assert run_cli("replace", url, "marble.jpg", "-o", "one", env=env, cwd=work).returncode == 0
    host.put("/p.png", image_bytes(color=(20, 160, 40)))  # changed, with nothing to say so
    reused = run_cli("replace", url, "marble.jpg", "-o", "two", "--json", env=env, cwd=work)
    assert json.loads(reused.stdout)["cached"] is True
    assert len(host.seen("/p.png")) == 1, "no validators: the kept copy is used without asking"
    fresh = run_cli("replace", url, "marble.jpg", "-o", "three", "--no-cache", env=env, cwd=work)
    assert fresh.returncode == 0, fresh.stderr.decode()
    assert len(host.seen("/p.png")) == 2 and len(emu.runs()) == 2


def test_the_same_image_by_url_and_by_file_is_one_request(emu, host, work, env):
    url = host.put("/bottle.png", (work / "bottle.png").read_bytes())
    by_file = run_cli("replace", "bottle.png", "marble.jpg", "-o", "one", env=env, cwd=work)
    by_url = run_cli("replace", url, "marble.jpg", "-o", "two", "--json", env=env, cwd=work)
    assert by_file.returncode == 0 and by_url.returncode == 0, by_url.stderr.decode()
    assert json.loads(by_url.stdout)["cached"] is True and len(emu.runs()) == 1


BAD_HOSTS = {
    "declared too large": (dict(body=b"x" * 16, length=60 << 20),
                           "62,914,560 bytes is over Runflow's 50 MiB limit", 4),
    "streamed too large": (dict(body=lambda: b"x" * (51 << 20), length=None),
                           "the body is over Runflow's 50 MiB limit", 4),
    "gzip bomb": (dict(body=lambda: gzip.compress(b"\0" * (51 << 20), compresslevel=1),
                       headers={"Content-Encoding": "gzip"}),
                  "the body is over Runflow's 50 MiB limit", 4),
    "not an image": (dict(body=b"<html>Sold out</html>", headers={"Content-Type": "text/html"}),
                     "not an image", 4),
    "not found": (dict(status=404), "not found (HTTP 404)", 4),
    "forbidden": (dict(status=403), "the server refused access (HTTP 403)", 4),
    "unavailable": (dict(status=503), "the server answered HTTP 503, also when tried again", 5),
    "redirect to http": (dict(status=302,
                              headers={"Location": "http://images.example.com/p.png?" + SIGNATURE}),
                         "redirects to http://images.example.com/p.png, which is not https; "
                         "refused", 4),
}


@pytest.mark.parametrize("case", list(BAD_HOSTS))
def test_a_bad_url_input_is_refused_before_anything_is_spent(emu, host, work, env, case):
    route, needle, code = BAD_HOSTS[case]
    if callable(route.get("body")):
        route = {**route, "body": route["body"]()}
    url = host.put("/p.png", **route)
    result = run_cli("replace", url + "?" + SIGNATURE, "marble.jpg", env=env, cwd=work)
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert f"Error: {url}" in stderr and needle in stderr and "\nHint: " in stderr
    assert "0ddba11c0ffee" not in output_of(result)
    assert emu.requests == [], "nothing reached Runflow"
    assert len(host.seen("/p.png")) == (2 if code == 5 else 1)  # RUNFLOW_BG_RETRIES=2


def test_plain_http_to_another_host_is_refused_before_any_request(emu, work, env):
    with ImageHost(tls=False) as proxy:
        env.update(HTTP_PROXY=proxy.url(""), HTTPS_PROXY=proxy.url(""), NO_PROXY="")
        refused = run_cli("replace", "http://images.example.com/p.png?" + SIGNATURE,
                          "marble.jpg", env=env, cwd=work)
        assert proxy.requests == []
        reached = run_cli("replace", "https://images.example.com/p.png", "marble.jpg", env=env,
                          cwd=work)
        assert [seen.method for seen in proxy.requests] == ["CONNECT", "CONNECT"], \
            "an allowed URL does go out, through the proxy"
    assert refused.returncode == 4
    assert ("Error: Refusing http://images.example.com/p.png: only https URLs are fetched "
            "(plain http only from this machine") in refused.stderr.decode()
    assert reached.returncode == 5 and emu.requests == []


def test_plain_http_from_loopback_is_fetched(emu, work, env):
    with ImageHost(tls=False) as local:
        url = local.put("/p.png", image_bytes())
        result = run_cli("replace", url, "marble.jpg", "--dry-run", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert f"checked {url} (160x120 PNG)" in result.stderr.decode()


def test_batch_fetches_and_checks_every_url_before_the_first_create(emu, host, work, env):
    good = host.put("/mug.png", image_bytes())
    gone = host.url("/gone.png")
    scene = host.put("/beach.png", scene_bytes(work))
    result = run_cli("batch", good, gone, "--scene", scene, "-o", "out", "--yes", "--json",
                     env=env, cwd=work)
    assert result.returncode == 6, result.stderr.decode()
    lines = {line["photo"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert lines[gone]["error"]["message"] == f"{gone}: not found (HTTP 404)."
    assert lines[good]["outputs"][0]["path"] == "out/mug-bg.webp"
    assert "1 unreadable" in result.stderr.decode()
    assert sorted(seen.path for seen in host.seen()) == ["/beach.png", "/gone.png", "/mug.png"]
    assert {seen.context for seen in host.seen()} == {0}, "every fetch came before any create"
    assert len(emu.runs()) == 1


def test_two_urls_with_one_file_name_are_refused_before_any_fetch(emu, host, work, env):
    result = run_cli("batch", host.url("/a/p.png"), host.url("/b/p.png"), "--scene",
                     "marble.jpg", "--yes", env=env, cwd=work)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert (f"Error: {host.url('/a/p.png')} and {host.url('/b/p.png')} would be saved under "
            "the same name.") in stderr
    assert "Hint: Give them in a --manifest with an `out` or `name` column" in stderr
    assert host.seen() == [] and emu.requests == []


def test_a_manifest_row_whose_url_fails_is_a_bad_row(emu, host, work, env):
    good = host.put("/mug.png", image_bytes())
    gone = host.url("/gone.png")
    (work / "items.csv").write_text(
        f"photo\n{good}\n{gone}?{SIGNATURE}\nhttp://images.example.com/lamp.png\n")
    result = run_cli("batch", "--manifest", "items.csv", "--scene", "marble.jpg", "--yes",
                     env=env, cwd=work)
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    assert (f"items.csv: 2 bad rows (row 3: {gone}: not found (HTTP 404).; row 4: Refusing "
            "http://images.example.com/lamp.png: only https URLs are fetched") in stderr
    assert "0ddba11c0ffee" not in stderr
    assert emu.requests == []


@pytest.mark.parametrize("url, name", [
    ("https://shop.example/p/red%20mug.jpg?sig=1#top", "red mug.jpg"),
    ("https://shop.example/a%2F..%2Fb.png", "a_.._b.png"),
    ("https://shop.example/%1b%5b31mred.png", "_[31mred.png"),
    ("https://shop.example/images/", "images"),
    ("https://shop.example/" + "a" * 300 + ".jpg", "a" * 120),
])
def test_a_url_gives_a_safe_file_name(url, name):
    assert url_file_name(url) == name


@pytest.mark.parametrize("url", ["https://shop.example/", "https://shop.example/..",
                                 "https://shop.example/%2e%2e", "https://shop.example/?id=5"])
def test_a_url_without_a_usable_name_gets_one_from_its_hash(url):
    name = url_file_name(url)
    assert name.startswith("url-") and len(name) == 16
    assert input_stem(url) == name
    signed = url + ("&" if "?" in url else "?") + "sig=other"
    assert url_file_name(signed) == name, "the query never changes the name"


def test_a_host_name_that_does_not_resolve_is_said_so():
    request = httpx.Request("GET", "https://shop.invalid/p.png")
    error = httpx.ConnectError("[Errno -2] Name or service not known", request=request)
    error.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert describe_transport_error(error) == "its host name could not be resolved"
    unreachable = Unreachable(error, "https://shop.invalid/p.png?sig=1")
    assert unreachable.message == ("Could not reach https://shop.invalid/p.png: its host name "
                                   "could not be resolved.")
    assert unreachable.hint.startswith("Check the host name's spelling")
