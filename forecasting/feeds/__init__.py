"""Market feeds behind one interface (`base.Feed`): ENTSO-E, Energy-Charts, NVE and the offline
replay of the bundled history. A feed fetches and parses; it knows neither the lake nor retries
(the failure classes it raises drive the retry policy in `forecasting.ingest.pull`)."""
