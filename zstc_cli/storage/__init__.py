"""Where records come from and go: paths and compression, S3, atomic writes, checkpoints, job planning."""
