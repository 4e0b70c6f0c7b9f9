"""What a GPU machine without network needs to run the GPU check and the device-model
benchmark: the packages its image lacks, as wheels for its Python (3.12, x86-64 Linux), and
Ray's wheel less what the search never imports, small enough to carry (79 MB whole, 41 MB
stripped). Run it here, where pip reaches a registry; carry the folder; on the GPU machine
``python3 -m benchmarks.gpu_carry --install FOLDER`` puts everything under FOLDER/site, which
goes first on PYTHONPATH (the image's own torch, numpy and pandas stay in use).

    python -m benchmarks.gpu_carry --out .gpucarry                 # here: download and strip
    python3 -m benchmarks.gpu_carry --install .gpucarry            # there: unpack
    export PYTHONPATH=$PWD/.gpucarry/site:$PWD RAY_AUTH_MODE=disabled
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

# The image has torch, numpy, pandas, scipy, scikit-learn, tqdm, pyyaml, onnx(runtime) and
# Ray's other dependencies; these it lacks (read on the machine, 2026-12-04), at the versions
# the second GPU lease ran (pydantic and pydantic-core must match each other).
MISSING = {"pydantic": "2.14.4", "pydantic-core": "2.50.5", "annotated-types": "0.8.0",
           "typing-extensions": "4.16.0", "typing-inspection": "0.4.5", "optuna": "5.0.0",
           "alembic": "1.20.1", "sqlalchemy": "2.1.9", "greenlet": "3.5.6", "mako": "1.4.3",
           "colorlog": "6.12.0", "jsonschema": "4.26.0", "jsonschema-specifications": "2025.9.1",
           "referencing": "0.37.0", "rpds-py": "2026.9.1"}
RAY = "2.60.0"
# Parts of Ray the search never imports: the Java jar, RLlib, Serve, LLM and the dashboard's
# web client (ray.tune, ray.train, ray.air and ray.data stay).
RAY_UNUSED = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/",
              "ray/dashboard/client/build/")
STRIPPED_RAY = "ray-stripped.zip"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_28_x86_64", "manylinux1_x86_64")


def download_command(packages: list[str], folder: Path, python: str = "3.12") -> list[str]:
    """pip's command for binary wheels of ``packages`` (pinned) for the GPU machine's Python,
    without their dependencies (those the image has must not be replaced)."""
    platforms = [argument for name in PLATFORMS for argument in ("--platform", name)]
    return [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            *platforms, "--dest", str(folder), *packages]


def strip_ray(wheel: Path, out: Path) -> tuple[int, int]:
    """Ray's wheel rewritten to ``out`` without ``RAY_UNUSED``, file modes kept (its servers
    are executables); (entries kept, entries dropped)."""
    kept = dropped = 0
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename.startswith(RAY_UNUSED):
                dropped += 1
                continue
            target.writestr(info, source.read(info.filename))
            kept += 1
    return kept, dropped


def unpack(archive: Path, site: Path) -> int:
    """Every file of ``archive`` (a wheel or the stripped Ray) under ``site``, its mode as
    stored; how many files."""
    count = 0
    with zipfile.ZipFile(archive) as source:
        for info in source.infolist():
            if info.is_dir():
                continue
            path = Path(source.extract(info, site))
            os.chmod(path, (info.external_attr >> 16) & 0o777 or 0o644)
            count += 1
    return count


def prepare(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pinned = [f"{name}=={pin}" for name, pin in MISSING.items()]
    print(f"downloading {len(pinned) + 1} wheels to {folder}", file=sys.stderr)
    subprocess.run(download_command([*pinned, f"ray=={RAY}"], folder), check=True)
    wheel = next(folder.glob("ray-*.whl"))
    kept, dropped = strip_ray(wheel, folder / STRIPPED_RAY)
    wheel.unlink()
    size = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
    print(f"Ray stripped: {kept} files kept, {dropped} dropped; {folder} holds {size:.0f} MiB",
          file=sys.stderr)


def install(folder: Path) -> None:
    site = folder / "site"
    archives = [*sorted(folder.glob("*.whl")), folder / STRIPPED_RAY]
    files = sum(unpack(archive, site) for archive in archives)
    print(f"{files} files of {len(archives)} archives under {site}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="download and strip into this folder")
    action.add_argument("--install", type=Path, help="unpack this folder into FOLDER/site")
    args = parser.parse_args(argv)
    if args.out:
        prepare(args.out)
    else:
        install(args.install)


if __name__ == "__main__":
    main()
