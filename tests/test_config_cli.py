"""`runflow-bg config path|show|get|set|unset`: real processes, state in a temp dir."""

from __future__ import annotations

import json
import stat

import pytest

from helpers import KEY, cli_env, run_cli, write_photo, write_scene, zip_bytes
from runflow_bg.client import RunflowClient
from runflow_bg.config import SETTINGS
from runflow_bg.emulator import Emulator


@pytest.fixture
def env(isolated_env):
    return cli_env(None, isolated_env, key=None)


@pytest.fixture
def config_file(isolated_env):
    return isolated_env / "config" / "config.json"


def config(*args: str, env: dict, cwd):
    return run_cli("config", *args, env=env, cwd=cwd)


def test_path_prints_the_config_file(env, tmp_path, config_file):
    result = config("path", env=env, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.decode() == f"{config_file}\n"


def test_set_get_unset_round_trip(env, tmp_path, config_file):
    assert config("set", "concurrency", "8", env=env, cwd=tmp_path).returncode == 0
    assert json.loads(config_file.read_text()) == {"concurrency": 8}
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_file.parent.stat().st_mode) == 0o700
    assert config("get", "concurrency", env=env, cwd=tmp_path).stdout.decode() == "8\n"
    result = config("unset", "concurrency", env=env, cwd=tmp_path)
    assert result.returncode == 0 and json.loads(config_file.read_text()) == {}
    unset = config("get", "concurrency", env=env, cwd=tmp_path)
    assert unset.returncode == 0 and unset.stdout == b""
    assert "concurrency is not set" in unset.stderr.decode()
    again = config("unset", "concurrency", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "concurrency was not set" in again.stderr.decode()


def test_set_keeps_the_other_settings(env, tmp_path, config_file):
    config("set", "out", "results", env=env, cwd=tmp_path)
    config("set", "timeout", "90s", env=env, cwd=tmp_path)
    config("set", "base_url", "https://api.example.com/v1/", env=env, cwd=tmp_path)
    assert json.loads(config_file.read_text()) == {
        "out": "results", "timeout": "90s", "base_url": "https://api.example.com"}


def test_show_lists_every_setting_with_its_origin_and_hides_the_key(env, tmp_path, config_file):
    config("set", "out", "results", env=env, cwd=tmp_path)
    env["RUNFLOW_API_KEY"] = "rf_secret_value_8642"
    result = config("show", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"# {config_file}"
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(SETTINGS) | {"api_key"}
    assert "results" in rows["out"] and rows["out"].endswith("(config file)")
    assert "https://api.runflow.io" in rows["base_url"] and rows["base_url"].endswith("(default)")
    assert "(not set: default -j for batch)" in rows["concurrency"]
    assert "…8642" in rows["api_key"] and rows["api_key"].endswith("(RUNFLOW_API_KEY)")
    assert "rf_secret_value_8642" not in result.stdout.decode() + result.stderr.decode()


def base_url_row(result) -> str:
    return [line for line in result.stdout.decode().splitlines() if line.startswith("base_url")][0]


def test_show_names_where_the_base_url_comes_from(env, tmp_path):
    config("set", "base_url", "https://file.example.com", env=env, cwd=tmp_path)
    row = base_url_row(config("show", env=env, cwd=tmp_path))
    assert "https://file.example.com" in row and row.endswith("(config file)")
    env["RUNFLOW_BASE_URL"] = "https://env.example.com"
    row = base_url_row(config("show", env=env, cwd=tmp_path))
    assert "https://env.example.com" in row and row.endswith("(RUNFLOW_BASE_URL)")
    row = base_url_row(run_cli("--base-url", "https://flag.example.com", "config", "show",
                               env=env, cwd=tmp_path))
    assert "https://flag.example.com" in row and row.endswith("(--base-url)")


@pytest.mark.parametrize("command", [["get", "colour"], ["set", "colour", "blue"], ["unset", "colour"]])
def test_an_unknown_key_exits_2_naming_the_known_ones(env, tmp_path, command, config_file):
    result = config(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Unknown setting 'colour'." in result.stderr.decode()
    assert f"Known settings: {', '.join(sorted(SETTINGS))}." in result.stderr.decode()
    assert not config_file.exists()


@pytest.mark.parametrize("key,value,needle", [
    ("concurrency", "0", "Invalid value for concurrency: must be at least 1."),
    ("concurrency", "four", "Invalid value for concurrency: must be a whole number."),
    ("timeout", "soon", "Invalid value for timeout: invalid duration 'soon'"),
    ("base_url", "http://api.example.com", "Invalid value for base_url: must be an https URL"),
    ("name", "{nope}.{ext}", "unknown field {nope}"),
])
def test_a_bad_value_exits_2_and_changes_nothing(env, tmp_path, config_file, key, value, needle):
    result = config("set", key, value, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr.decode()
    assert not config_file.exists()


def test_missing_arguments_exit_2(env, tmp_path):
    assert config("set", "out", env=env, cwd=tmp_path).returncode == 2
    assert config("get", env=env, cwd=tmp_path).returncode == 2


def test_a_damaged_config_file_exits_2_with_where_it_is(env, tmp_path, config_file):
    config_file.parent.mkdir(parents=True)
    config_file.write_text("{oops")
    for command in (["show"], ["get", "out"], ["set", "out", "x"]):
        result = config(*command, env=env, cwd=tmp_path)
        assert result.returncode == 2
        assert f"Cannot read the config file {config_file}" in result.stderr.decode()
        assert "runflow-bg config path" in result.stderr.decode()


def test_settings_apply_to_the_commands(env, tmp_path):
    write_photo(tmp_path / "p.png")
    write_scene(tmp_path / "s.jpg")
    members = {"image.png": (tmp_path / "p.png").read_bytes(),
               "reference.jpg": (tmp_path / "s.jpg").read_bytes()}
    with Emulator(api_key=KEY, run_seconds=0.2) as emu:
        with RunflowClient(KEY, emu.base_url) as client:
            asset = client.upload(zip_bytes(members), "inputs.zip")
            run = client.create_run({"zip_url": asset.url, "file_image": "image.png",
                                     "file_reference": "reference.jpg"})
        config("set", "base_url", emu.base_url, env=env, cwd=tmp_path)
        config("set", "out", "results", env=env, cwd=tmp_path)
        config("set", "name", "{run}{n}.{ext}", env=env, cwd=tmp_path)
        env["RUNFLOW_API_KEY"] = KEY
        result = run_cli("runs", "wait", run.id, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == f"results/{run.id}.webp\n"
