"""A loaded device model: predicts a network's latency from its config alone, in well under a
millisecond (pure arithmetic over the config's operations), the same figure every time."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from threshsearch.config import ArchitectureConfig
from threshsearch.devicemodel.calibration import network_features
from threshsearch.devicemodel.fileformat import (
    FORMAT,
    FORMAT_VERSION,
    DeviceModelError,
    DeviceModelFile,
)
from threshsearch.devicemodel.layout import other_layout_groups, table_group
from threshsearch.devicemodel.ops import network_ops
from threshsearch.errors import UserError
from threshsearch.profiles import Profile

NOISY_PCT = 10.0  # profiling rounds further apart than this (p90) make the summary warn


class DeviceModel:
    """The latency model of one device, runtime and set of settings (see ``summary``)."""

    def __init__(self, data: DeviceModelFile, content: dict | None = None):
        self.data = data
        self._lines = {group.group: np.asarray(group.coefficients) for group in data.table}
        # A layout the profile never met at some kind and resolution is priced by the other
        # layout's line there: an extrapolation, as beyond the channel counts timed.
        for missing, timed in other_layout_groups(self._lines, data.layout).items():
            self._lines[missing] = self._lines[timed]
        self._calibration = np.asarray(data.calibration.coefficients)
        # The id is the hash of the content as read (a file), not of a re-dump: a later
        # version's new defaulted field must not change the id of an unchanged file. A model
        # without a layout rule is written without the key, as before the rule existed, so
        # that earlier versions read it.
        dump = data.model_dump(mode="json", exclude={"layout"} if data.layout is None else None)
        self._text = json.dumps(dump if content is None else content, indent=1,
                                sort_keys=True)

    @property
    def model_id(self) -> str:
        """A short hash of the file's content: the same model, the same id."""
        return hashlib.sha256(self._text.encode()).hexdigest()[:12]

    def predict_ms(self, config: ArchitectureConfig, profile: Profile | None = None) -> float:
        """The predicted latency of ``config``'s network, in milliseconds. ``profile`` (the
        profiler's figures, when the caller has them) is only checked for its input size: the
        prediction needs nothing but the config."""
        input_size = self.data.settings.input_size
        if profile is not None and profile.input_size != input_size:
            raise ValueError(f"a profile at input size {profile.input_size} given to a device "
                             f"model made for {input_size}")
        ops = network_ops(config, input_size)
        groups = [table_group(op, self.data.layout) for op in ops]
        missing = sorted(set(groups) - self._lines.keys())
        if missing:
            raise UserError(
                f"device model {self.model_id}: the network has operations the model has not "
                f"timed ({', '.join(missing)}); it covers "
                f"{', '.join(group.group for group in self.data.table)}; profile the device "
                f"for this space")
        # The calibration may extrapolate below what any call costs (its coefficients are
        # free in sign): never predict less than the runtime's empty call.
        floor = max(self.data.calibration.call_overhead_ms, 1e-6)
        return max(float(network_features(ops, groups, self._lines) @ self._calibration),
                   floor)

    def summary(self) -> str:
        data, error = self.data, self.data.held_out
        settings = data.settings
        versions = data.runtime.versions  # torch-cuda's library is torch
        version = versions.get(data.runtime.name) or versions.get("torch", "")
        return (f"{data.device.name} ({data.device.kind}, {data.device.hostname}), "
                f"{data.runtime.name} {version}, "
                f"{settings.threads} thread(s), batch {settings.batch_size}, "
                f"{settings.input_size}x{settings.input_size}, {settings.dtype}"
                f"{self._layout_note()}; held-out error: "
                f"{error.within_10pct:.0%} of {error.networks} within ±10 %, median "
                f"{error.median_abs_pct:.1f} %, p90 {error.p90_abs_pct:.1f} %, Spearman "
                f"{error.spearman:.3f} [model {self.model_id}]")

    def _layout_note(self) -> str:
        layout = self.data.layout
        if layout is None:
            return ""
        multiples = ("" if layout.channel_multiple is None else
                     f" or multiples of {layout.channel_multiple}")
        return (f", {layout.name} layout for <= {layout.narrow_max_channels}{multiples} input "
                f"channels")

    def steadiness_warning(self) -> str:
        """A warning when the machine was not steady while profiled ("" when it was)."""
        spread = self.data.profiling.round_spread_p90_pct
        if spread is None or spread <= NOISY_PCT:
            return ""
        return (f"warning: this machine's timings of the same work differed by up to "
                f"{spread:.0f} % between profiling rounds (p90); predictions inherit that: "
                f"profile again with the machine to itself")

    def require(self, *, runtime: str | None = None, batch_size: int | None = None,
                input_size: int | None = None, dtype: str | None = None,
                threads: int | None = None) -> None:
        """Raise UserError if the model was made for other settings than those given."""
        made = {"runtime": self.data.runtime.name, **self.data.settings.model_dump()}
        asked = {"runtime": runtime, "batch_size": batch_size, "input_size": input_size,
                 "dtype": dtype, "threads": threads}
        for name, value in asked.items():
            if value is not None and value != made[name]:
                raise UserError(
                    f"device model {self.model_id}: {name} {value!r} asked for, but the model "
                    f"was made for {name} {made[name]!r} ({self._made_for()}); profile the "
                    f"device with these settings")

    def _made_for(self) -> str:
        settings = self.data.settings
        return (f"{self.data.runtime.name}, batch {settings.batch_size}, input "
                f"{settings.input_size}, {settings.dtype}, {settings.threads} thread(s)")

    def save(self, path: str | Path, replace: bool = True) -> Path:
        """Write the model to ``path`` whole or not at all: a reader never sees half a file.
        With ``replace`` False, a file already at ``path`` is kept (FileExistsError)."""
        path = Path(path)
        # Made as open() makes any file (the umask's mode), beside its final place.
        written = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
        written.write_text(self._text + "\n")
        try:
            if replace:
                os.replace(written, path)
            else:
                try:
                    os.link(written, path)  # fails on an existing file: no check-then-write
                except FileExistsError:
                    raise
                except OSError:  # a file system without hard links
                    if path.exists():
                        raise FileExistsError(path) from None
                    os.replace(written, path)
        finally:
            written.unlink(missing_ok=True)
        return path


def load_device_model(path: str | Path) -> DeviceModel:
    """Read a device-model file; every problem is one line naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the device model ({error.strerror})") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{path}: not JSON; expected a device model written by "
                        "`threshsearch device-profile`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a device model (no 'format: {FORMAT}'); expected a "
                        "file written by `threshsearch device-profile`")
    if data.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: device-model format_version {data.get('format_version')!r}"
                        f" is not readable by this threshsearch (it reads {FORMAT_VERSION}); "
                        "profile the device again")
    try:
        return DeviceModel(DeviceModelFile.parse(data), data)
    except DeviceModelError as error:
        raise UserError(f"{path}: invalid device model: {error}") from None
