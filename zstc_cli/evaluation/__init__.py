"""evaluate: gold labels, predictions, metrics and the report."""
