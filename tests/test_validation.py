"""The schema layer: the shipped JSON Schemas are the models' own, every shipped space and
every exported file validates against them, and pydantic's errors become one line each."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from threshsearch.cli import main
from threshsearch.config import ArchitectureConfig, ConfigError
from threshsearch.devicemodel.fileformat import DeviceModelFile
from threshsearch.search.space import SearchSpace
from threshsearch.train import Recipe, RecipeError

ROOT = Path(__file__).parent.parent
SPACES = sorted([*ROOT.glob("search_spaces/*.yaml"), *ROOT.glob("benchmarks/*.yaml")])
EXPORTED = sorted((ROOT / "tests" / "fixtures" / "exported").glob("*.yaml"))


def shipped(kind: str) -> dict:
    return json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text())


@pytest.mark.parametrize(("kind", "model"), [("space", SearchSpace),
                                             ("config", ArchitectureConfig),
                                             ("device-model", DeviceModelFile)])
def test_the_shipped_schemas_are_what_the_command_writes(tmp_path, kind, model, capsys):
    out = tmp_path / f"{kind}.json"
    assert main(["schema", kind, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == shipped(kind) == json.loads(model.json_schema())
    jsonschema.Draft202012Validator.check_schema(shipped(kind))


def test_the_command_refuses_an_out_in_a_missing_folder(tmp_path, capsys):
    out = tmp_path / "missing" / "space.json"
    assert main(["schema", "space", "--out", str(out)]) == 2
    assert f"its folder {out.parent} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("path", SPACES, ids=lambda path: path.name)
def test_every_shipped_space_validates_against_the_schema_and_names_it(path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/space.schema.json\n")
    jsonschema.validate(yaml.safe_load(text), shipped("space"))


@pytest.mark.parametrize("path", EXPORTED, ids=lambda path: path.name)
def test_every_exported_file_validates_against_the_schemas(path):
    document = yaml.safe_load(path.read_text())
    jsonschema.validate(document["architecture"], shipped("config"))
    train = shipped("space")["$defs"]["TrainSettings"]
    jsonschema.validate(document["train"], {**train, "$defs": shipped("space")["$defs"]})


def test_the_schema_refuses_what_the_models_refuse():
    bad = {"stages": [{"depth": 0, "growth": 8}], "treshold": 3}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, shipped("config"))
    with pytest.raises(ConfigError):
        ArchitectureConfig.from_dict(bad)


def test_the_schema_documents_defaults_bounds_and_descriptions():
    stage = shipped("config")["$defs"]["StageConfig"]["properties"]["depth"]
    assert (stage["minimum"], stage["maximum"]) == (1, 256) and stage["description"]
    assert shipped("config")["properties"]["threshold"]["default"] == "inf"
    data = shipped("space")["$defs"]["DataSettings"]["properties"]["test_fraction"]
    assert data["default"] == 0 and data["exclusiveMaximum"] == 0.5


def test_every_problem_is_reported_once_on_its_own_line():
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict({"lr": 0, "epochs": 2.5, "milestones": [0], "optimiser": "sgd"},
                         path="train")
    assert caught.value.problems == [
        "train.lr: 0 is invalid; expected a number in (0, 10]",
        "train.epochs: 2.5 is invalid; expected an integer from 1 to 100000",
        "train.milestones: [0] is invalid; expected a list of epochs >= 1",
        "train.optimiser: unknown key; did you mean 'optimizer'? valid keys: optimizer, lr, "
        "momentum, nesterov, weight_decay, batch_size, epochs, schedule, milestones, gamma, "
        "label_smoothing, amp, channels_last",
    ]
