"""Search: the space file, one trial's life, and the Ray Tune + Optuna driver."""

from threshsearch.search.runner import SearchSummary, open_study, run_search, with_overrides
from threshsearch.search.space import SearchSpace, SpaceError, load_space
from threshsearch.search.storage import load_study, open_storage

__all__ = [
    "SearchSpace",
    "SearchSummary",
    "SpaceError",
    "load_space",
    "load_study",
    "open_storage",
    "open_study",
    "run_search",
    "with_overrides",
]
