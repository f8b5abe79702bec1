"""Spotcast's library: day-ahead price forecasts four weeks ahead, importable without Prefect.

The data flow, package by package: `feeds` (market APIs and the offline replay, one interface) →
`ingest` (pull with staleness checks and retries, land) → `lake` (the partitioned Parquet store) →
`features` (what was known at an issue) → `model` (the pipeline: scaler, PCA, DeepAR; then the
spread stages) → `paths` / `products` (the forecast and what the desk trades) → `reports`, `api`
(what people read). `evaluation` and `tuning` score and choose models on the same code; `jobs` are
the library entry points the flows, the CLI and notebooks call; `clock`, `config`, `schema` and
`errors` are the ground floor everyone imports.
"""
