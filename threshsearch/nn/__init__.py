"""The ThreshNet family as PyTorch modules. Knows configs, nothing of search or training."""

from threshsearch.nn.builder import ThreshNet, build_model
from threshsearch.nn.dense import DenseStage
from threshsearch.nn.harmonic import HarmonicStage

__all__ = ["DenseStage", "HarmonicStage", "ThreshNet", "build_model"]
