"""Corpus adaptation without labels: calibrate a scorer's scores on a sample of the input, refine the
embedding scorer's label side from the sample's texts, and decide (safeguard) whether to adopt it.

numpy only: callers embed or score the sample and pass matrices in; :class:`AdaptationState` is the fitted
result, a small JSON-able dict once saved (``to_dict`` / ``from_dict``, ``check`` refuses a mismatch).
"""

from zstc_cli.adaptation.calibration import Calibration, fit_calibration
from zstc_cli.adaptation.fit import fit_embedding, fit_scores
from zstc_cli.adaptation.prototypes import Refinement, refine
from zstc_cli.adaptation.safeguard import judge
from zstc_cli.adaptation.state import AdaptationMismatch, AdaptationState

__all__ = [
    "AdaptationMismatch", "AdaptationState", "Calibration", "Refinement",
    "fit_calibration", "fit_embedding", "fit_scores", "judge", "refine",
]  # fmt: skip
