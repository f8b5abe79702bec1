"""Prefect flows: thin orchestration over the `forecasting` library.

Importing this package changes nothing: Prefect's defaults for a local, offline install are applied
by an explicit call, `flows.defaults.apply_prefect_defaults`, at the entry points that need them.
"""
