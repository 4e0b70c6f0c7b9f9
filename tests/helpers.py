"""Shared test data."""

TINY = {
    "stem": {"widths": [8], "kernel": 3, "stride": 1, "pool": False},
    "threshold": 16,
    "stages": [
        {"depth": 2, "growth": 4, "transition_width": 12},
        {"depth": 2, "growth": 6, "downsample": False},
    ],
    "num_classes": 10,
}
