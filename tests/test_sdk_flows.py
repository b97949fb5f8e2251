"""Runflow's own SDK flows against the emulator over https, in every mode an SDK user meets.

`sdk_like.SdkLike` behaves as the JavaScript SDK's source does; each flow must work unmodified
in the default mode and with the SDK-shaped and `outputs[]`-shaped answers.
"""

from __future__ import annotations

import base64
import io
import ssl

import pytest
from PIL import Image

from helpers import KEY, sample_zip
from runflow_bg.emulator import Emulator
from sdk_like import RunFailed, SdkError, SdkLike

MODEL = "runflow/background-replace"
MEMBERS = {"file_image": "image.png", "file_reference": "reference.png"}
MODES = {
    "default": {},
    "sdk shape": {"sdk_shape": True},
    "outputs[]": {"output_shape": "outputs"},
}


@pytest.fixture(params=list(MODES), ids=list(MODES))
def world(request):
    with Emulator(api_key=KEY, run_seconds=0.2, tls=True) as emu:
        for name, value in MODES[request.param].items():
            setattr(emu.faults, name, value)
        yield emu, SdkLike(KEY, emu.base_url, verify=ssl.create_default_context(cafile=emu.ca_file))


def output_urls(run: dict) -> list[str]:
    output = run["output"]
    if "image_urls" in output:
        return output["image_urls"]
    return [item["url"] for item in output["outputs"] if item.get("type", "image") == "image"]


def test_health(world):
    _, sdk = world
    assert sdk.health()["ok"] is True


@pytest.mark.parametrize("mime_type", ["", "application/zip", "application/x-zip-compressed"])
def test_upload_over_https_in_every_labelling(world, mime_type):
    _, sdk = world
    asset = sdk.upload(sample_zip(), "inputs.zip", mime_type)
    assert asset["url"].startswith("https://") and asset["ref"] == f"runflow://assets/{asset['id']}"


def test_create_wait_and_read_the_outputs(world):
    emu, sdk = world
    asset = sdk.upload(sample_zip(), "inputs.zip")
    dispatched = sdk.run(MODEL, {"input": {"zip_url": asset["url"], **MEMBERS}})
    assert dispatched["status_code"] == "queued"
    done = sdk.wait(dispatched["id"])
    urls = output_urls(done)
    assert urls and all(url.startswith("https://") for url in urls)
    image = Image.open(io.BytesIO(sdk.http.get(urls[0]).content))
    assert image.size == (64, 48)


def test_an_asset_ref_as_input(world):
    _, sdk = world
    asset = sdk.upload(sample_zip(), "inputs.zip")
    run = sdk.run(MODEL, {"input": {"zip_url": asset["ref"], **MEMBERS}})
    assert output_urls(sdk.wait(run["id"]))


def test_a_small_data_uri_as_input(world):
    _, sdk = world
    data_uri = "data:application/zip;base64," + base64.b64encode(sample_zip()).decode()
    run = sdk.run(MODEL, {"input": {"zip_url": data_uri, **MEMBERS}})
    assert output_urls(sdk.wait(run["id"]))


def test_an_unknown_ref_is_refused(world):
    _, sdk = world
    with pytest.raises(SdkError) as info:
        sdk.run(MODEL, {"input": {"zip_url": "runflow://assets/0b9c6c1e-0000-4000-8000-000000000000",
                                  **MEMBERS}})
    assert info.value.status == 422 and "asset not found or expired" in str(info.value)


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_run_that_ends_badly_ends_the_wait(world, status):
    emu, sdk = world
    emu.faults.fail_runs(1, status=status)
    asset = sdk.upload(sample_zip(), "inputs.zip")
    run = sdk.run(MODEL, {"input": {"zip_url": asset["url"], **MEMBERS}})
    with pytest.raises(RunFailed):
        sdk.wait(run["id"])


def test_polling_goes_on_through_5xx(world):
    emu, sdk = world
    asset = sdk.upload(sample_zip(), "inputs.zip")
    run = sdk.run(MODEL, {"input": {"zip_url": asset["url"], **MEMBERS}})
    emu.faults.fail_next("run_get", 503, count=2)
    assert sdk.wait(run["id"])["status_code"] == "succeeded"


@pytest.mark.parametrize("case,status", [("wrong key", 401), ("unknown run", 404),
                                         ("bad input", 422)])
def test_errors_carry_their_status_and_message(world, case, status):
    emu, sdk = world
    with pytest.raises(SdkError) as info:
        if case == "wrong key":
            stranger = SdkLike("rf_wrong_key_0000", emu.base_url,
                               verify=ssl.create_default_context(cafile=emu.ca_file))
            stranger.get("x")
        elif case == "unknown run":
            sdk.get("no-such-run")
        else:
            sdk.run(MODEL, {"input": {"zip_url": "https://x.example/inputs.zip"}})
    assert info.value.status == status and str(info.value).startswith(f"HTTP {status}: ")
