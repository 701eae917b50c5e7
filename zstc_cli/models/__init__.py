"""Models: the catalog of known names, resolving a name to files, loading a scorer, int8 quantization."""
