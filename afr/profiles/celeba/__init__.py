"""LEAF CelebA: face images (Liu et al., 2015) grouped by celebrity, "is the person smiling?".

Data (``afr data fetch celeba``, see :mod:`afr.profiles.celeba.fetch`): LEAF JSON with ``x`` = image
file name and ``y = (Smiling + 1) / 2``, plus the official images, either the folder
``img_align_celeba/`` or the untouched ``img_align_celeba.zip`` (read in place, no extraction).
Users (celebrities with at least 5 images) are grouped into clients by
:class:`~afr.profiles._leaf.Grouping` (YAML ``grouping``).

Preprocessing (LEAF's ``celeba/cnn.py``): each image is opened with Pillow, resized to 84 x 84
(the aspect ratio is not kept) and converted to RGB; pixel values stay raw 0-255. They are stored
as uint8 ``[n, 3, 84, 84]`` and become float32 only per batch (:meth:`Celeba.train_batch`,
:meth:`Celeba.eval_inputs`). The resampling filter is Pillow's bicubic (Pillow's default for
``resize`` since 7.0; LEAF ran with whatever its Pillow defaulted to).

Model (LEAF's reference CNN, 31,202 parameters): 4 x [conv 3x3, 32 channels, 'same' -> BatchNorm
-> max-pool 2x2 with TF's 'same' padding (``ceil_mode``: 84 -> 42 -> 21 -> 11 -> 6) -> ReLU] ->
flatten 6*6*32 = 1152 -> dense 2. LEAF's batch normalisation always runs in training mode (batch
statistics, also at test time); ``track_running_stats=False`` does the same here and leaves the model
without buffers. LEAF's learning rate is 0.1.
"""

from .profile import Celeba

__all__ = ["Celeba"]
