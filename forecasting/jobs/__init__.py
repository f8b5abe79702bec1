"""Library entry points the flows, the CLI and notebooks call: fetch inputs, run a pipeline, store outputs."""
