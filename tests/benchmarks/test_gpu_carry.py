"""What is carried to a GPU machine: Ray's wheel stripped of what the search never imports,
file modes kept through stripping and unpacking; pip asked for pinned binary wheels only,
without dependencies."""

import stat
import sys
import zipfile

from benchmarks.gpu_carry import download_command, strip_ray, unpack


def _entry(archive: zipfile.ZipFile, name: str, mode: int, data: bytes = b"x") -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFREG | mode) << 16
    archive.writestr(info, data)


def test_ray_is_stripped_of_the_unused_parts_and_its_servers_stay_executable(tmp_path):
    wheel = tmp_path / "ray-2.0-cp312-cp312-manylinux2014_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        _entry(archive, "ray/__init__.py", 0o644)
        _entry(archive, "ray/tune/__init__.py", 0o644)
        _entry(archive, "ray/core/src/ray/raylet/raylet", 0o755, b"\x7fELF")
        _entry(archive, "ray/jars/ray_dist.jar", 0o644)
        _entry(archive, "ray/rllib/__init__.py", 0o644)
        _entry(archive, "ray/dashboard/client/build/main.js", 0o644)
        _entry(archive, "ray/dashboard/modules/__init__.py", 0o644)
    stripped = tmp_path / "ray-stripped.zip"
    assert strip_ray(wheel, stripped) == (4, 3)
    with zipfile.ZipFile(stripped) as archive:
        assert sorted(archive.namelist()) == [
            "ray/__init__.py", "ray/core/src/ray/raylet/raylet",
            "ray/dashboard/modules/__init__.py", "ray/tune/__init__.py"]
    site = tmp_path / "site"
    assert unpack(stripped, site) == 4
    raylet = site / "ray/core/src/ray/raylet/raylet"
    assert raylet.read_bytes() == b"\x7fELF"
    assert stat.S_IMODE(raylet.stat().st_mode) == 0o755
    assert stat.S_IMODE((site / "ray/tune/__init__.py").stat().st_mode) == 0o644


def test_pip_is_asked_for_pinned_binary_wheels_of_the_gpu_machines_python(tmp_path):
    command = download_command(["optuna==5.0.0"], tmp_path)
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--dest") + 1] == str(tmp_path)
    assert command[-1] == "optuna==5.0.0" and "manylinux2014_x86_64" in command
