"""Getting series into the lake: plan the pulls (daily or backfill), pull each with its staleness
check and retry policy, land the rows atomically, report per feed. The runbook over them (backfill, daily, repair) is
`forecasting.jobs.ingest`, beside the other jobs the flows, the CLI and notebooks call."""
