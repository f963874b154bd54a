"""Training data: the Parquet manifest, identity scans, triplets, the loader and its transforms."""
