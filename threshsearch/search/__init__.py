"""Search: the space file (``space``), the samplers (``samplers``), Pareto ranking
(``pareto``), early-stopping schedulers (``schedulers``) and the learning-curve evidence they
resume from (``evidence``), one trial's life (``trial``), the study's storage (``storage``),
baselines (``baselines``), re-timing the front (``retime``) and the Ray Tune + Optuna driver
(``runner``).

Deliberately imports nothing: every Ray worker imports ``threshsearch.search.trial``, and
the driver's modules (Optuna, SQLAlchemy, Tune's search API) would only slow its start-up.
"""
