"""Getting series into the lake: plan the pulls (daily or backfill), pull each with its staleness
check and retry policy, land the rows atomically, report per feed; `runs` is the one runbook that
the flows, the CLI and notebooks call."""
