"""Fed-ISIC2019's loss and metric: FLamby's weighted focal loss and balanced accuracy (sklearn)."""

from __future__ import annotations

import math
import warnings

import torch.nn.functional as F
from torch import Tensor

__all__ = ["CLASS_WEIGHTS", "focal_loss", "balanced_accuracy"]

#: FLamby's focal-loss alpha: N_train / n_c over the 8 classes.
CLASS_WEIGHTS = (5.5813, 2.0472, 7.0204, 26.1194, 9.5369, 101.0707, 92.5224, 38.3443)


def focal_loss(logits: Tensor, targets: Tensor, alpha: Tensor, gamma: float = 2.0) -> Tensor:
    """Weighted focal loss: mean over samples of ``-alpha[y] * (1 - p_y)^gamma * log p_y``."""
    log_p = F.log_softmax(logits, dim=1).gather(1, targets.view(-1, 1)).view(-1)
    weight = alpha.to(logits.device, logits.dtype)[targets.view(-1)]
    return (-weight * (1.0 - log_p.exp()) ** gamma * log_p).mean()


def balanced_accuracy(logits: Tensor, targets: Tensor) -> float:
    """Mean per-class recall of the argmax over the classes present in ``targets`` (NaN if empty)."""
    if len(targets) == 0:
        return math.nan
    predicted = logits.argmax(dim=1).cpu().numpy()
    with warnings.catch_warnings():  # predicted classes absent from the truth are ignored, as intended
        warnings.simplefilter("ignore", UserWarning)
        from sklearn.metrics import balanced_accuracy_score  # lazy: sklearn costs ~0.5 s to import

        return float(balanced_accuracy_score(targets.cpu().numpy(), predicted))
