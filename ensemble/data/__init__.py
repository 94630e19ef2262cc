"""The data: splits (CSV, TSV, JSON lines, Parquet) with their ids, texts and labels, K-fold
assignments and target class priors."""
