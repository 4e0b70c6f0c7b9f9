"""The one place that imports torchvision.

PyPI's torchvision wheels are CUDA builds. Beside a CPU-only torch their compiled operators
cannot load, and torchvision's import then fails while registering fake kernels for those
operators ("operator torchvision::nms does not exist"). Datasets, transforms and models need
none of the compiled operators, so on exactly that failure the import is retried with the
fake-kernel registration skipped. With a matching torch/torchvision pair the first import
succeeds and nothing is touched.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def _import_torchvision() -> Any:
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations"
        )
        import torchvision
    import torchvision.transforms.v2  # not imported by torchvision itself; after the guard
    return torchvision


torchvision = _import_torchvision()
