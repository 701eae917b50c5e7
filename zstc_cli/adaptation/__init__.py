"""Corpus adaptation without labels: calibrate a scorer's scores on a sample of the input, refine the
embedding scorer's label side from the sample's texts, and decide (safeguard) whether to adopt it.

numpy only: callers embed or score the sample and pass matrices in; :class:`AdaptationState` is the fitted
result, a small JSON-able dict once saved (``to_dict`` / ``from_dict``, ``check`` refuses a mismatch).
"""

from .calibration import Calibration, fit_calibration
from .fit import choose_sample, combine_hypotheses, fit_embedding, fit_scores
from .priors import estimate_priors, reweight
from .prototypes import Refinement, refine
from .safeguard import judge
from .state import AdaptationMismatch, AdaptationState

__all__ = [
    "AdaptationMismatch", "AdaptationState", "Calibration", "Refinement", "choose_sample", "combine_hypotheses",
    "estimate_priors", "fit_calibration", "fit_embedding", "fit_scores", "judge", "refine", "reweight",
]  # fmt: skip
