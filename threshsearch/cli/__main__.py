"""``python -m threshsearch.cli``: the ``threshsearch`` command."""

import sys

from threshsearch.cli import main

sys.exit(main())
