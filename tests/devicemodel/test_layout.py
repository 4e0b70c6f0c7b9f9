"""The layout rule: probed from a runtime (found, absent, or no single rule of the form), the
table groups it splits (a layout never timed priced by the other's line), a model profiled
with it round-tripping and pricing every network, a model without one written as before, the
same timings fitted without it (worse on a device whose layouts differ), and ONNX Runtime's
own choice read from its graph."""

import json
import platform

import pytest

from tests.devicemodel.fakes import (
    BlockedLayoutRuntime,
    FakeClock,
    FakeRuntime,
    small_networks,
)
from threshsearch.devicemodel import DeviceModel, load_device_model, profile_device
from threshsearch.devicemodel.fileformat import LayoutRule
from threshsearch.devicemodel.layout import (
    PROBED_CHANNELS,
    other_layout_groups,
    probe_layout,
    table_group,
)
from threshsearch.devicemodel.ops import Op, network_ops
from threshsearch.devicemodel.profiling import fit_device_model, time_device
from threshsearch.errors import UserError


class _Probed(FakeRuntime):
    def __init__(self, blocked):
        super().__init__(FakeClock())
        self.blocked = blocked

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        return self.blocked(in_channels, kernel)


@pytest.mark.parametrize(("narrow", "multiple"),
                         [(16, 4), (8, 4), (0, 8), (2, 8), (16, None)])
def test_the_rule_is_read_from_the_runtime(narrow, multiple):
    rule = probe_layout(BlockedLayoutRuntime(FakeClock(), narrow, multiple))
    assert (rule.narrow_max_channels, rule.channel_multiple) == (narrow, multiple)
    assert rule.probed_channels == PROBED_CHANNELS


@pytest.mark.parametrize("blocked", [lambda c, k: None, lambda c, k: False,
                                     lambda c, k: True])
def test_one_layout_over_every_width_gives_no_rule(blocked):
    assert probe_layout(_Probed(blocked)) is None


@pytest.mark.parametrize(("blocked", "why"), [
    (lambda c, k: c in (5, 7, 11, 13, 40), "no rule of the form"),
    (lambda c, k: c <= 60 or c == 64, r"several rules \(at most 60, or a multiple of any of "
     r"4, 8, 16, 32\)"),
    (lambda c, k: c <= 16 or (k == 3 and c % 4 == 0), "differs between kernel sizes"),
])
def test_a_layout_no_single_rule_describes_warns_and_splits_nothing(blocked, why):
    with pytest.warns(UserWarning, match=why):
        assert probe_layout(_Probed(blocked)) is None


def test_convolutions_split_by_the_rule_and_other_operations_do_not():
    rule = LayoutRule(narrow_max_channels=16, channel_multiple=4, probed_channels=(1, 64))
    blocked, plain = (Op("harmonic_layer", 2, width, 24, (width,)) for width in (36, 38))
    narrow = Op("dense_layer", 4, 14, 18, (48, 4))
    pool = Op("pool_avg", 4, 38, 38)
    assert table_group(blocked, rule) == "harmonic_layer-nchwc@2"
    assert table_group(plain, rule) == "harmonic_layer-plain@2"
    assert table_group(narrow, rule) == "dense_layer-nchwc@4"
    assert table_group(pool, rule) == pool.group == "pool_avg@4"
    assert table_group(plain, None) == plain.group == "harmonic_layer@2"


@pytest.fixture(scope="module")
def split_model(tmp_path_factory):
    clock = FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THRESHSEARCH_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        return profile_device(small_networks(), runtime=BlockedLayoutRuntime(clock),
                              clock=clock, progress=False, calibration_networks=10)


def test_a_layout_never_timed_at_a_kind_and_resolution_takes_the_other_ones_line():
    rule = LayoutRule(narrow_max_channels=16, channel_multiple=4, probed_channels=(1, 64))
    groups = ["dense_layer-nchwc@2", "dense_layer-plain@4", "dense_layer-nchwc@4", "head@1"]
    assert other_layout_groups(groups, rule) == {"dense_layer-plain@2": "dense_layer-nchwc@2"}
    assert other_layout_groups(groups, None) == {}


def test_a_model_with_a_rule_times_both_layouts_apart_and_prices_every_network(
        split_model, tmp_path):
    rule = split_model.data.layout
    assert (rule.narrow_max_channels, rule.channel_multiple) == (4, 4)
    groups = {group.group for group in split_model.data.table}
    ops = [op for config in small_networks() for op in network_ops(config, 32)]
    assert groups == {table_group(op, rule) for op in ops}
    assert any("-nchwc@" in group for group in groups)
    assert any("-plain@" in group for group in groups)
    assert "nchwc layout for <= 4 or multiples of 4 input channels;" in split_model.summary()
    loaded = load_device_model(split_model.save(tmp_path / "device.json"))
    assert loaded.data.layout == rule
    for config in small_networks():
        assert loaded.predict_ms(config) == split_model.predict_ms(config) > 0


def test_a_model_prices_a_layout_it_never_timed_with_the_other_ones_line(split_model):
    data = split_model.data
    config = next(config for config in small_networks() if any(
        table_group(op, data.layout).endswith(f"-plain@{op.resolution}")
        for op in network_ops(config, 32)))
    plain = next(table_group(op, data.layout) for op in network_ops(config, 32)
                 if table_group(op, data.layout).endswith(f"-plain@{op.resolution}"))
    blocked = plain.replace("-plain@", "-nchwc@")
    table = {group.group: group for group in data.table}
    without = DeviceModel(data.model_copy(update={"table": [
        group for group in data.table if group.group != plain]}))
    borrowed = DeviceModel(data.model_copy(update={"table": [
        table[blocked].model_copy(update={"group": plain}) if group.group == plain else group
        for group in data.table]}))
    assert without.predict_ms(config) == borrowed.predict_ms(config) != split_model.predict_ms(
        config)
    neither = DeviceModel(data.model_copy(update={"table": [
        group for group in data.table if group.group not in (plain, blocked)]}))
    with pytest.raises(UserError, match=plain):
        neither.predict_ms(config)


def test_a_model_without_a_rule_is_written_as_before_the_rule_existed(tmp_path):
    clock = FakeClock()
    model = profile_device(small_networks(), runtime=FakeRuntime(clock), clock=clock,
                           progress=False, calibration_networks=10)
    assert "layout" not in json.loads(model.save(tmp_path / "a.json").read_text())
    loaded = load_device_model(tmp_path / "a.json")
    assert loaded.data.layout is None and loaded.model_id == model.model_id
    assert loaded.predict_ms(small_networks(1)[0]) == model.predict_ms(small_networks(1)[0])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="ONNX Runtime's NCHWc kernels are x86's")
def test_onnxruntime_runs_a_convolution_of_aligned_channels_blocked():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from threshsearch.devicemodel.runtimes import OnnxRuntime, TorchRuntime

    runtime = OnnxRuntime(threads=1)
    if not runtime.blocked_layout(16, 3):
        pytest.skip("this CPU has no NCHWc kernels (they need AVX2 or wider)")
    for kernel in (1, 3):
        assert runtime.blocked_layout(32, kernel) is True
        assert runtime.blocked_layout(34, kernel) is False
    assert TorchRuntime().blocked_layout(32, 3) is None


def test_the_same_timings_fit_without_the_rule_pool_each_groups_layouts():
    clock = FakeClock()
    timings = time_device(small_networks(), runtime=BlockedLayoutRuntime(clock), clock=clock,
                          progress=False, calibration_networks=10)
    split = fit_device_model(timings, timings.layout)
    pooled = fit_device_model(timings, None)
    # The fake's plain convolutions cost 4x: only the split table can fit both layouts.
    assert split.data.held_out.median_abs_pct < 0.5 * pooled.data.held_out.median_abs_pct
    other = LayoutRule(narrow_max_channels=8, channel_multiple=8, probed_channels=(1, 64))
    with pytest.raises(ValueError, match="the layout must be the one"):
        fit_device_model(timings, other)
    assert pooled.data.layout is None and split.data.layout == timings.layout
    assert {group.group for group in pooled.data.table} == {
        op.group for op, _ in timings.operations}
    assert sum(len(group.samples) for group in pooled.data.table) == sum(
        len(group.samples) for group in split.data.table) == len(timings.operations)
    assert pooled.data.profiling == split.data.profiling
