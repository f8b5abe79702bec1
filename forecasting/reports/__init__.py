"""Analyst outputs of the daily run: fan charts, forecast tables, the data-quality table and the report
bundle (a folder of PNGs, CSVs and a markdown summary, which the daily flow mirrors as Prefect
artifacts: flows/artifacts.py)."""
