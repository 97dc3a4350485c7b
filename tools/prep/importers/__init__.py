"""vt-prep importers: datasets in their release layouts -> samples.parquet (see each module)."""
