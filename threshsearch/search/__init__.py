"""Search: the space file (``space``), one trial's life (``trial``), the study's storage
(``storage``) and the Ray Tune + Optuna driver (``runner``).

Deliberately imports nothing: every Ray worker imports ``threshsearch.search.trial``, and
the driver's modules (Optuna, SQLAlchemy, Tune's search API) would only slow its start-up.
"""
