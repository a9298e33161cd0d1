"""Fed-IXI (FLamby, IXI-Tiny): T1 brain-MRI brain-mask segmentation, 3 hospitals as centers.

Centers from the subject folder name ``IXI<ID>-<Center>-<n>``: Guys 0, HH 1, IOP 2; train/test from
FLamby's ``metadata_tiny.csv`` (column ``Split``, by patient ID). Preprocessing as FLamby, at load time:
each volume gets a channel axis and is resized to (48, 60, 48) with MONAI ``Resize`` (area mode); the
image is z-scored over the whole volume (MONAI ``NormalizeIntensity``); the label is resized the same
way and one-hot encoded to 2 channels with MONAI ``AsDiscrete`` (which truncates the area-averaged mask,
so a voxel is brain only where the whole source region is). Images are held as float16 and labels as
uint8 to halve memory; :meth:`FedIXI.train_batch` / :meth:`eval_inputs` turn them into float32.

Model: FLamby's 3D U-Net (TorchIO ``unet`` 0.7.7 layout, 246,156 parameters): 3 levels, first width 8,
BatchNorm, PReLU, max-pooling, trilinear upsampling, softmax over 2 channels. Loss: soft Dice loss
averaged over (sample, channel); metric: soft Dice per sample and channel (1 when both are empty),
averaged (see :mod:`afr.profiles._segmentation`).
"""

from .profile import FedIXI

__all__ = ["FedIXI"]
