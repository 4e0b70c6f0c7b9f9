"""Confirming a search's answer: the chosen networks and the baselines retrained from
scratch with several seeds, tested once on the test split, and a verdict with its
uncertainty.

``protocols`` (the named protocols: the search's own recipe, the paper's for CIFAR-10/100
and SVHN; the seeds), ``records`` (one record per (network, seed) in the companion study
``<study>-confirm``), ``pair`` (one pair's training, on a worker), ``run`` (the plan and the
Ray tasks that carry it out) and ``verdict`` (means, intervals and the comparison with each
baseline). It sits beside ``search/`` and below ``results/``; importing it does not import
Ray.
"""
