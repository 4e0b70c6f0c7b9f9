"""Hostile inputs: malformed and adversarial configs, search spaces and exported files thrown
at the loaders and the CLI. Every one must end in a one-line error naming a key path (exit
code 2 from the CLI), never a traceback, and never reach training."""

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
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
