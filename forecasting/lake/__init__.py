"""The Parquet lake: its file system (local or fsspec, atomic replacement, the writer's lock) and one
store per kind of content — series (raw and curated), forecasts, forwards, the track record of raw
paths — each partitioned so DuckDB and pyarrow read it with hive partitioning."""
