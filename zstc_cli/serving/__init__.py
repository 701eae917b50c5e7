"""zstc serve: the HTTP app and the micro-batcher behind it."""
