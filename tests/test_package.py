"""The package's top level: its names, and what importing it costs."""

import subprocess
import sys

import threshsearch


def test_every_public_name_resolves():
    for name in threshsearch.__all__:
        assert getattr(threshsearch, name) is not None
    assert threshsearch.profile("threshnet79", 32, 10).params == 14_371_858


def test_the_surrogate_trial_imports_no_pytorch():
    probe = ("import sys, threshsearch, threshsearch.search.surrogate; "
             "print(sorted(name for name in sys.modules if name.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
