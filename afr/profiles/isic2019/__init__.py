"""Fed-ISIC2019 (FLamby): 8-class dermoscopy classification, 6 centers.

Data: ``afr data fetch isic2019`` downloads the official ISIC 2019 training files and preprocesses them
(see :mod:`afr.profiles.isic2019.fetch`: center from ``lesion_id`` + HAM10000 ``dataset``, shorter side
224 px, Shades-of-Gray colour constancy). Train/test per center come from FLamby's ``train_test_split``
file (``fold2`` = ``train_k`` / ``test_k``: 9930/2483, 3163/791, 2691/672, 1807/452, 655/164, 351/88).

In memory every image is uint8 (3, 224, 224): the preprocessed JPEG (shorter side 224) decoded with
Pillow and centre-cropped along its longer side to 224 x 224 (an image whose shorter side is not 224,
e.g. prepared by hand, is first resized to 224 the same way). Labels are int64 0..7 = MEL, NV, BCC,
AK, BKL, DF, VASC, SCC.

Training batches (:meth:`Isic2019.train_batch`) approximate FLamby's albumentations pipeline with
torch ops and the client's generator, each step with probability 0.5 as albumentations' defaults:
RandomScale(0.07), Rotate(±50°), RandomBrightnessContrast(0.15, 0.1), Flip (horizontal, vertical or
both), Affine(shear ±0.1°), RandomCrop 200, CoarseDropout(16 x 16 holes, filled with 0), then ImageNet
normalisation. What differs: scale, rotation, flip, shear and crop are one bilinear ``grid_sample``
(albumentations resamples at each step); borders are reflected by ``grid_sample`` (OpenCV's
BORDER_REFLECT_101 in albumentations); the crop is taken from the stored 224 x 224 centre square, not
from the whole rectangular image; brightness/contrast is applied after the geometry; FLamby draws the
number of dropout holes (1..8) once per dataset object, we draw it per mini-batch. Evaluation
(:meth:`Isic2019.eval_inputs`) is FLamby's: centre crop 200 + ImageNet normalisation.

Model: EfficientNet-B0 (``efficientnet_pytorch`` layout, 4,017,796 parameters with the Linear(1280 -> 8)
head); ImageNet weights when ``pretrained: true`` (see the YAML). Loss: FLamby's weighted focal loss
(gamma 2, alpha = N_train / n_class). Metric: balanced accuracy of the argmax (sklearn).
"""

from .profile import Isic2019

__all__ = ["Isic2019"]
