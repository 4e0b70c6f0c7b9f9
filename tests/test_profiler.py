import pytest
import torch
from torch import nn

import threshsearch
from threshsearch.compat import torchvision
from threshsearch.profiler import profile_model

TABLE_V = {
    # params, MAdd (G), Flops (G), MemR+W (MiB): the paper's Table V at 224x224, 1000 classes
    "threshnet79": (15_323_248, 6.90, 3.46, 299.96),
    "threshnet95": (17_140_592, 8.12, 4.07, 360.30),
    "hardnet85": (36_670_212, 18.18, 9.10, 313.42),
    "densenet121": (7_978_856, 5.74, 2.88, 359.71),
}


@pytest.mark.parametrize("name", list(TABLE_V))
def test_presets_reproduce_table_v(name):
    params, madd, flops, memrw = TABLE_V[name]
    result = threshsearch.profile(name, input_size=224)
    assert result.params == params
    assert round(result.madd / 1e9, 2) == madd
    assert round(result.flops / 1e9, 2) == flops
    assert round(result.memrw_mib, 2) == memrw


def test_hardnet68_parameter_count():
    assert threshsearch.profile("hardnet68").params == 17_565_348


@pytest.mark.parametrize(
    ("name", "params"),
    [("threshnet79", 14_371_858), ("threshnet95", 16_189_202), ("hardnet85", 35_402_022),
     ("densenet121", 6_964_106)],
)
def test_cifar_parameter_counts(name, params):
    assert threshsearch.profile(name, input_size=32, num_classes=10).params == params


def test_threshnet79_cifar_madd_and_cio():
    assert round(threshsearch.profile("threshnet79", 32, 10).madd / 1e6, 1) == 140.8
    cio = {name: threshsearch.profile(name).cio / 1e6 for name in
           ("threshnet79", "hardnet85", "densenet121")}
    assert {name: round(value, 2) for name, value in cio.items()} == {
        "threshnet79": 18.04, "hardnet85": 17.47, "densenet121": 21.86}


def test_torchvision_densenet121_matches_the_preset():
    with torch.device("meta"):
        reference = torchvision.models.get_model("densenet121", weights=None)
    ours = threshsearch.profile("densenet121").to_dict()
    theirs = profile_model(reference, 224).to_dict()
    for key in ("params", "madd", "flops", "memrw_mib", "cio"):
        assert theirs[key] == pytest.approx(ours[key], rel=1e-12), key


def test_counting_rules_on_a_hand_checked_module():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 5),
    )
    result = profile_model(model, input_size=8)
    conv_out, pooled, avg = 4 * 8 * 8, 4 * 4 * 4, 4 * 2 * 2
    conv_madd = 2 * 27 * conv_out
    assert [layer.madd for layer in result.layers] == [
        conv_madd, 4 * conv_out, conv_out, 3 * pooled, 4 * avg, 0, 5 * 31]
    assert [layer.flops for layer in result.layers] == [
        27 * conv_out + conv_out, 2 * conv_out, conv_out, conv_out, pooled, 0, 80]
    reads = [192 + 112, conv_out + 8, conv_out, conv_out, pooled, 0, 16 + 85]
    writes = [conv_out, conv_out, conv_out, pooled, avg, 0, 5]
    assert [layer.mem_read for layer in result.layers] == reads
    assert [layer.mem_write for layer in result.layers] == writes
    assert result.memrw_mib == pytest.approx((sum(reads) + sum(writes)) * 4 / 2**20)
    assert result.cio == 192 + conv_out


def test_a_module_called_twice_is_counted_once_as_torchstat_does():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.act(x))

    assert profile_model(Twice(), input_size=4).madd == 3 * 16


def test_per_layer_table_and_training_mode_kept():
    model = threshsearch.build_model("threshnet79", num_classes=10)
    result = profile_model(model, 32)
    assert model.training
    table = result.table()
    assert len(table) == len(result.layers)
    assert table["params"].sum() == result.params
