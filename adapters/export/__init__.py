"""The log and the read models as Parquet files for a warehouse, without personal data."""
