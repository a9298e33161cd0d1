"""Fed-KiTS19 (FLamby): kidney and kidney-tumour segmentation in CT, 6 hospital sites as silos.

Silos, splits and preprocessing come from :mod:`afr.profiles.kits19.fetch` (FLamby's silo rule on
``anony_sites.csv``: sites 7, 13, 14, 55, 57, 67 with 9/3, 11/3, 9/3, 9/3, 12/4, 24/6 train/test cases;
our simplified nnU-Net-style CT preprocessing into one npz per case).

A sample is a case: ``ClientData.inputs`` holds case numbers, ``targets`` the case's fixed evaluation
mask patch (uint8, (1, *patch_size)). Training patches are drawn in :meth:`FedKiTS19.train_batch` as
nnU-Net / FLamby do: within a batch, samples alternate between a uniformly random patch and one centred
on a random voxel of a random foreground class present in the case (kidney or tumour), padded with 0
where it leaves the volume; then, with ``augment: true``, nnU-Net's default 3D augmentation minus its
elastic deformation: rotation (±15° per axis, p 0.2), scaling (0.85–1.25, p 0.2), gamma (0.7–1.5,
statistics retained, p 0.3) and mirroring along each axis (p 0.5). Evaluation uses one fixed patch per
case, centred on the bounding box of its kidney and tumour voxels (FLamby draws its test patches with
the same random / foreground alternation as training, without augmentation).

Model: nnU-Net v1's 3D ``Generic_UNet`` as MONAI ``DynUNet`` — six stages of widths 32/64/128/256/320/320
(``unet_filters``), two 3³ conv + InstanceNorm (affine, eps 1e-5) + LeakyReLU(0.01) per stage,
strided-conv downsampling ([2,2,2]×4, then [1,2,2]), transposed-conv upsampling, He init (a = 0.01), no
deep supervision, 3 output classes (logits). ``DynUNet`` has 30,779,843 parameters against
``Generic_UNet``'s 30,785,984: its convs carry no bias (a per-channel constant that InstanceNorm removes
anyway, 3,840 parameters) and it builds no unused deep-supervision heads (2,304), and has a bias on
the output conv (+3). Variant ``small``: widths 8/16/32/64/80/80 (1.9 M parameters) for CPUs.
Loss: Dice (batch, no background) + cross-entropy; metric: mean of the kidney+tumour and tumour Dice
per batch of 2 cases, averaged over batches (:mod:`afr.profiles._segmentation`).
"""

from .profile import FedKiTS19

__all__ = ["FedKiTS19"]
