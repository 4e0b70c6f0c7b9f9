"""Hostile inputs: malformed and adversarial configs, search spaces and exported files thrown
at the loaders and the CLI. Every one must end in a one-line error naming a key path (exit
code 2 from the CLI), never a traceback, and never reach training."""

import contextlib
import copy
import io
import json
import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from threshsearch.api import load_config
from threshsearch.cli import main
from threshsearch.config import ArchitectureConfig, ConfigError
from threshsearch.presets import get_preset
from threshsearch.results.export import FORMAT, is_result_document, read_result
from threshsearch.search.space import SearchSpace, SpaceError
from threshsearch.train import Trainer

BOUNDED = settings(max_examples=40, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-(10**30), 10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


def paths_of(data, prefix=()):
    """Every key path into nested dicts and lists."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths_of(value, (*prefix, index))


@st.composite
def mutated(draw, base):
    """``base`` with one to three changes: a value replaced, a key removed or added."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths_of(data))))
        if not path:
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return data


CONFIG = get_preset("threshnet79", 10).to_dict()
SPACE = yaml.safe_load(Path("search_spaces/quickstart.yaml").read_text())
RESULT = {"format": FORMAT, "seed": 0, "data": {"dataset": "synthetic"},
          "train": {"epochs": 1, "lr": 0.01}, "architecture": CONFIG}
FIELDS = ("config", "stem", "stages", "threshold", "dense_reduction", "harmonic_reduction",
          "activation", "dropout", "head_norm", "num_classes", "architecture", "train", "/")


def assert_one_line_naming_a_key(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert any(field in message for field in FIELDS), message


@BOUNDED
@given(mutated(CONFIG))
def test_malformed_configs_give_one_line_errors(data):
    try:
        ArchitectureConfig.from_dict(data)
    except ConfigError as error:
        assert_one_line_naming_a_key(str(error))


@BOUNDED
@given(mutated(SPACE))
def test_malformed_spaces_give_one_line_errors(data):
    try:
        SearchSpace.from_dict(data)
    except SpaceError as error:
        message = str(error)
        assert "\n" not in message
        assert any(key in message for key in (*SPACE, "search space", "extra")) or \
            "unknown key" in message, message


@BOUNDED
@given(st.one_of(values, mutated(SPACE)))
def test_any_space_file_through_the_cli_is_exit_0_or_a_one_line_exit_2(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.yaml"
        path.write_text(yaml.safe_dump(data))
        code, err = run_main(["validate", "--space", str(path), "--samples", "1"])
    assert code in (0, 2)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("threshsearch validate:")


class _ReachedTraining(Exception):
    pass


@BOUNDED
@given(mutated(RESULT))
@example({**RESULT, "data": True})  # found by this test: a data section that is no mapping
def test_a_hostile_exported_file_never_reaches_training_unless_valid(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.yaml"
        path.write_text(yaml.safe_dump(data))
        with mock.patch.object(Trainer, "fit", side_effect=_ReachedTraining):
            try:
                code, err = run_main(["train", "--config", str(path), "--dataset", "synthetic",
                                      "--out", str(Path(folder) / "out"), "--quiet"])
            except _ReachedTraining:
                load_config(path)  # it reached training: then the file must be valid
                if is_result_document(data):
                    read_result(path)
                return
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def run_main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"!!python/object/apply:os.system ['touch /tmp/pwned']\n", "not valid YAML"),
        (b"stages: !!python/name:os.system\n", "not valid YAML"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "not valid YAML: nested too deeply"),
        (b"stages: &a [*a]\n", "stages[0]: expected a mapping"),
        (json.dumps({"stages": [{"depth": 10**40, "growth": 8}]}).encode(),
         "stages[0].depth"),
        (json.dumps({"stages": [{"depth": 2, "growth": 8}], "threshold": "NaN"}).encode(),
         "threshold"),
        (json.dumps({"stages": [{"depth": 2, "growth": 8, "mode\n": "x"}]}).encode(),
         "unknown key"),
    ],
)
def test_adversarial_files(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, err = run_main(["profile", "--config", str(path)])
    assert code == 2
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not Path("/tmp/pwned").exists()


# ------------------------------------------------------------ hostile image folders
def _png(size: int = 4) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (size * 9, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


FOLDER_NAMES = st.sampled_from(["a", "b", "ü", "日本", "x y", ".hidden", "__MACOSX",
                                ".ipynb_checkpoints", "Thumbs.db", ".DS_Store"])
FILE_SUFFIXES = st.sampled_from([".png", ".PNG", ".jpg", ".txt", ""])
FILE_KINDS = st.sampled_from(["image", "truncated", "junk", "empty", "broken link",
                              "file link", "folder link", "fifo", "no access"])
# Mostly into the two good classes, so that many trees load and their skips are checked.
FOLDERS = st.lists(st.sampled_from(["a", "b"]) | FOLDER_NAMES, min_size=0, max_size=2)
folder_entries = st.lists(
    st.tuples(FOLDERS, FOLDER_NAMES, FILE_SUFFIXES,
              FILE_KINDS, st.binary(max_size=40)),
    max_size=12)


def _make_tree(root: Path, entries, classes: bool) -> list[Path]:
    """Build ``entries`` under ``root`` (over two good classes ``a`` and ``b`` of three images
    each, if ``classes``); the paths of everything that is no folder."""
    made = []
    for name in ("a", "b") if classes else ():
        (root / name).mkdir()
        for index in range(3):
            made.append(root / name / f"good{index}.png")
            made[-1].write_bytes(_png())
    for index, (folders, name, suffix, kind, junk) in enumerate(entries):
        parent = root.joinpath(*folders)
        if (parent.exists() and not parent.is_dir()) or parent.is_symlink():
            continue
        parent.mkdir(parents=True, exist_ok=True)
        path = parent / f"{name}{index}{suffix}"
        if kind == "image":
            path.write_bytes(_png(4 + index))
        elif kind == "truncated":
            path.write_bytes(_png()[:30])
        elif kind == "junk":
            path.write_bytes(junk)
        elif kind == "empty":
            path.touch()
        elif kind == "broken link":
            path.symlink_to(root / "nowhere")
        elif kind == "file link":
            target = parent / f"target{index}.png"
            target.write_bytes(_png())
            made.append(target)
            path.symlink_to(target)
        elif kind == "folder link":
            if len(folders) < 1:
                continue  # at the top a link to a folder is a class of its own
            path.symlink_to(root, target_is_directory=True)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.write_bytes(_png())
            path.chmod(0)
        made.append(path)
    return made


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(folder_entries, st.sampled_from([True, True, True, False]))
def test_a_hostile_image_folder_loads_or_says_why_and_accounts_for_every_file(entries,
                                                                              classes):
    from threshsearch.data import DataError, load_dataset

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        made = _make_tree(root, entries, classes)
        try:
            dataset = load_dataset("folder", root)
        except DataError as error:
            assert "\n" not in str(error) and str(error).startswith("dataset folder: ")
            return
    for item in dataset.skipped:
        assert "\n" not in str(item) and item.reason
    skipped = [Path(item.path) for item in dataset.skipped]
    unlisted = [path for path in made
                if not any(path == s or s in path.parents for s in skipped)]
    images = len(dataset.train) + len(dataset.val)
    assert images == len(unlisted), "every file is read as an image or listed with why"
