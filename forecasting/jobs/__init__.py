"""The runbooks: library entry points the flows, the CLI and notebooks call — `ingest` (backfill, daily
pull, repair), `train`, `forecast`, `reporting`, `backtest`, `tune`. Each fetches its inputs, runs the
library's stages and stores the outputs; the flows only orchestrate them."""
