"""Search: the space file (``space``), the samplers (``samplers``), Pareto ranking
(``pareto``), early-stopping schedulers (``schedulers``) and the learning-curve evidence they
resume from (``evidence``), one trial's life (``trial``), the study's storage (``storage``),
baselines (``baselines``), re-timing the front (``retime``), what a trial is handed and what
it earns (``exchange``), the Ray Tune searcher around the study (``searcher``), reaching and
checking the cluster (``cluster``), the progress printer (``progress``) and the run that puts
them together (``runner``).

Deliberately imports nothing: every Ray worker imports ``threshsearch.search.trial``, and
the driver's modules (Optuna, SQLAlchemy, Tune's search API) would only slow its start-up.
"""
