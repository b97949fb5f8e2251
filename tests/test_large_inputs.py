"""Large photos in bounded memory: decoded small, hashed, zipped and uploaded from their files,
stored on disk by the emulator, and previewed small by `--local`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from helpers import KEY, QuickClock, cli_env, run_cli, sample_zip, write_photo, write_scene
from runflow_bg import reduced
from runflow_bg.client import RunflowClient
from runflow_bg.delivery import photo_rights
from runflow_bg.emulator import Emulator
from runflow_bg.emulator.compositor import composite
from runflow_bg.emulator.state import SPOOL_BYTES
from runflow_bg.errors import InputError
from runflow_bg.images import IN_MEMORY_BYTES, InputFile, prepare_image, read_input
from runflow_bg.packing import pack
from runflow_bg.reduced import png_trailer, reduced_copy

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:rights><rdf:Alt><rdf:li '
       b'xml:lang="x-default">Late Rights</rdf:li></rdf:Alt></dc:rights></rdf:Description>'
       b'</rdf:RDF></x:xmpmeta>')


def noisy(size, mode="RGB") -> Image.Image:
    """Noise over a gradient: every PNG row filter gets used, and nothing compresses away."""
    noise = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    ramp = Image.linear_gradient("L").resize(size).convert("RGB")
    return Image.blend(noise, ramp, 0.6).convert(mode)


def png(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few rows, so that small test images are decoded in many of them."""
    monkeypatch.setattr(reduced, "_BAND_BYTES", 4000)
    monkeypatch.setattr(reduced, "_WHOLE_BYTES", 4000)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("level", [1, 9])
def test_a_png_decoded_in_bands_equals_one_decoded_whole(small_bands, mode, level):
    image = noisy((331, 217), mode)
    with Image.open(io.BytesIO(png(image, compress_level=level))) as opened:
        small = reduced_copy(opened, 40)
    assert small.mode == mode and small.size == (42, 28)  # reduced by 8: the longest side >= 40
    assert small.tobytes() == image.reduce(8).tobytes()


def test_a_png_cut_short_is_refused_as_damaged(small_bands, tmp_path):
    data = png(noisy((300, 200)), compress_level=0)
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    with Image.open(tmp_path / "cut.png") as opened, pytest.raises(OSError):
        reduced_copy(opened, 64)
    with pytest.raises(InputError, match="cut.png: a damaged image"):
        prepare_image(read_input(str(tmp_path / "cut.png")))


def test_a_large_png_is_sent_from_its_file_with_a_small_preview(small_bands, tmp_path):
    path = tmp_path / "large.png"
    path.write_bytes(png(noisy((900, 600))))
    source = read_input(str(path))
    assert source.data is None and source.size > IN_MEMORY_BYTES  # read only when needed
    prepared = prepare_image(source)
    assert prepared.content is source and prepared.notices == ()
    assert (prepared.width, prepared.height, prepared.ext) == (900, 600, "png")
    assert max(prepared.preview.size) == 256
    assert prepared.open().read() == path.read_bytes() and prepared.byte_size == path.stat().st_size
    assert source.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_jpeg_size_is_read_before_its_preview_is_decoded_small(tmp_path):
    path = tmp_path / "large.jpg"
    noisy((1200, 800)).save(path, quality=90)
    prepared = prepare_image(read_input(str(path)))
    assert (prepared.width, prepared.height) == (1200, 800)
    assert max(prepared.preview.size) == 256 and prepared.content.path == path


def test_the_zip_is_streamed_into_a_file_from_the_photo_file(tmp_path):
    path = tmp_path / "large.png"
    path.write_bytes(png(noisy((900, 600))))
    photo = prepare_image(read_input(str(path)))
    assert photo.content.data is None
    scene = prepare_image(InputFile("s.jpg", write_scene(tmp_path / "s.jpg").read_bytes()))
    package = pack(photo, scene)
    assert package.size == package.file.seek(0, 2)
    with zipfile.ZipFile(package.file) as archive:
        assert archive.read("image.png") == path.read_bytes()
        assert [info.file_size for info in archive.infolist()] == [size for _, size in package.members]


def test_a_zip_over_the_limit_is_refused_before_it_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr("runflow_bg.packing.MAX_ZIP_BYTES", 1000)
    photo = prepare_image(read_input(str(write_photo(tmp_path / "p.png", size=(300, 200)))))
    with pytest.raises(InputError, match="Runflow accepts at most 1,000"):
        pack(photo, photo)


def test_metadata_after_the_pixels_of_a_png_is_read_without_them():
    data = png(Image.new("RGB", (300, 200), "white"))
    end = data.rindex(b"IEND") - 4
    late = data[:end] + chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP) + data[end:]
    assert photo_rights(io.BytesIO(late)) == ("Late Rights", None) == photo_rights(late)
    with Image.open(io.BytesIO(late)) as opened:
        assert b"Late Rights" in png_trailer(opened)["XML:com.adobe.xmp"].encode()
    assert photo_rights(io.BytesIO(data)) == (None, None)


def test_an_upload_from_a_file_is_read_again_for_a_retry(emu):
    data = sample_zip() + bytes(SPOOL_BYTES)  # past the size the emulator keeps in memory
    emu.faults.fail_next("storage_put", 503)
    with RunflowClient(KEY, emu.base_url, clock=QuickClock()) as client:
        asset = client.upload(io.BytesIO(data), "inputs.zip")
    assert emu.count("storage_put") == 2
    assert httpx.get(asset.url).content == data


def test_a_short_upload_is_refused_by_the_storage_host(emu):
    with httpx.Client(base_url=f"{emu.base_url}/v1",
                      headers={"Authorization": f"Bearer {KEY}"}) as api:
        session = api.post("/asset-uploads", json={"filename": "inputs.zip", "size_bytes": 10,
                                                   "mime_type": "application/zip"}).json()
    answer = httpx.put(session["upload_url"], content=b"12345")
    assert answer.status_code == 400 and b"IncompleteBody" in answer.content


def test_the_emulator_composites_a_large_photo_at_its_max_side():
    members = {"image.png": png(noisy((1500, 1000))), "reference.jpg": b""}
    scene = io.BytesIO()
    Image.new("RGB", (300, 200), "blue").save(scene, "JPEG")
    members["reference.jpg"] = scene.getvalue()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    archive.seek(0)
    result = composite(archive, "image.png", "reference.jpg", max_side=1024)
    assert Image.open(io.BytesIO(result)).size == (1024, 683)


def test_local_previews_a_large_photo_at_1024_px(tmp_path, isolated_env):
    write_photo(tmp_path / "wide.png", size=(1600, 900))
    write_scene(tmp_path / "scene.jpg")
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0")
    result = run_cli("replace", "--local", "wide.png", "scene.jpg", "--json", env=env,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    saved = json.loads(result.stdout)["outputs"][0]["path"]
    assert Image.open(tmp_path / saved).size == (1024, 576)


def test_quick_outputs_skip_the_compositor(emu):
    emu.faults.quick_outputs = True
    with RunflowClient(KEY, emu.base_url) as client:
        asset = client.upload(sample_zip(), "inputs.zip")
        run = client.create_run({"zip_url": asset.url, "file_image": "image.png",
                                 "file_reference": "reference.png"})
    emu.finish_runs()
    done = emu.runs()[0]
    assert done["id"] == run.id and done["status_code"] == "succeeded"
    image = Image.open(io.BytesIO(httpx.get(done["output"]["image_urls"][0]).content))
    assert image.format == "WEBP" and image.size == (64, 48)


def test_the_emulator_takes_hundreds_of_connections_at_once_and_counts_them():
    with Emulator(api_key=KEY) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        sockets = [socket.create_connection((host, int(port))) for _ in range(300)]

        def health(sock: socket.socket) -> bytes:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with sock:
                return sock.recv(64)

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(health, sockets))
        assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
        assert server.connections_accepted == 300
