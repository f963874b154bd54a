"""Getting datasets onto disk: download, extract, catalogue, RecordIO and insightface .bin packs."""
