"""Layer 3, data: the dataset registry, the IDX format, downloads and the parsed-file cache."""
