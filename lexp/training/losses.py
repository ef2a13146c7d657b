"""The generator's training losses: a Charbonnier reconstruction term with a structural
(1 − SSIM) one, or the PSNR lost against the flow render (what the protocols score), the
optional VGG-16 perceptual term, and the PatchGAN discriminator for the optional
adversarial term. Images are N×3×H×W sRGB-encoded tensors in [0, 1].
"""

from __future__ import annotations


def ssim_loss(a, b):
    """1 − SSIM (``lexp.metrics.ssim_map``, the score's own) of N×3×H×W images in [0, 1],
    per sample (N). Unlike the score it keeps the border (reflected), so edge pixels
    learn too."""
    import torch
    import torch.nn.functional as F

    from lexp.metrics import SSIM_SIGMA, SSIM_WINDOW, ssim_map

    radius = SSIM_WINDOW // 2
    x = torch.arange(-radius, radius + 1, dtype=a.dtype, device=a.device)
    g = torch.exp(-x ** 2 / (2 * SSIM_SIGMA ** 2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(a.shape[1], 1, -1, -1).contiguous()

    def blur(t):
        return F.conv2d(F.pad(t, [radius] * 4, mode="reflect"), kernel, groups=a.shape[1])

    return 1 - ssim_map(a, b, blur).flatten(1).mean(1)


CHARBONNIER_EPS = 0.01  # about 2.5 code values: quadratic below, L1 above


PSNR_FLOOR = 1e-5  # added to each mean squared error: PSNR saturates at 50 dB, so a crop
#                    the flow render already gets right to the code value cannot dominate


def reconstruction_loss(out, target, ssim_weight: float, baseline=None,
                        harm_weight: float = 0.0, kind: str = "charbonnier"):
    """The batch's loss: the per-sample losses averaged, plus, with a ``baseline`` image
    (the flow render), ``harm_weight`` times the mean of what each sample loses against
    it (zero where the output does better). Seen from the training loop, every sample
    where the generator is worse than the physics costs (1 + harm_weight)×: the network
    learns to leave the flow render alone unless it can do better, which is what the
    protocols reward clip by clip (a gain on one clip does not pay for a loss on another).

    ``kind``: ``charbonnier`` (:func:`sample_losses`) or ``psnr`` (:func:`psnr_lost`,
    which needs the baseline; ``ssim_weight`` does not apply)."""
    if kind == "psnr":  # the loss is already what each sample loses against the baseline
        losses = lost = psnr_lost(out, target, baseline)
    else:
        losses = sample_losses(out, target, ssim_weight)
        if baseline is None or harm_weight <= 0:
            return losses.mean()
        lost = losses - sample_losses(baseline, target, ssim_weight).detach()
    return losses.mean() + harm_weight * lost.clamp_min(0).mean()


def psnr_lost(out, target, baseline):
    """Per sample (N): the PSNR in dB that ``out`` loses against ``baseline`` (the flow
    render), both scored against ``target``: 10·log10(MSE_out / MSE_baseline), negative
    where the output does better.

    The protocols score each clip by its PSNR and take the median of the clips' gains
    over the flow render, so a clip the flow render already gets nearly right (a sky at
    40 dB) counts as much as a hard one (fireworks at 22 dB). An error in code values
    (Charbonnier) weighs the hard clips hundreds of times more, and a network trained on
    it gave up 0.6 dB on the sky for 0.4 on the river. In dB, every sample weighs the
    same."""
    import torch

    def mse(image):
        return ((image - target) ** 2).flatten(1).mean(1) + PSNR_FLOOR

    return 10 * torch.log10(mse(out) / mse(baseline.detach()))


def sample_losses(out, target, ssim_weight: float):
    """Charbonnier (a smooth L1) + ssim_weight·(1 − SSIM), on sRGB-encoded N×3×H×W
    images, per sample (N).

    Why not plain L1: its gradient keeps full strength however small the error, so the
    many pixels where the flow render is already right (static scenery) keep pushing the
    blend onto it until the softmax saturates and training stalls (it did: a constant
    validation loss from step 100 on). Below ~2.5 code values this loss is quadratic, so
    pixels that are right stop pushing, and it is PSNR's own (squared) error there."""
    import torch

    error = out - target
    charbonnier = (torch.sqrt(error * error + CHARBONNIER_EPS ** 2) - CHARBONNIER_EPS
                   ).flatten(1).mean(1)
    return charbonnier + ssim_weight * ssim_loss(out, target)


class Perceptual:
    """L1 between VGG-16 features (up to relu3_3) of two sRGB images."""

    def __init__(self, device) -> None:
        import torch

        from lexp import weights
        from lexp.torch_env import torchvision

        path, _ = weights.verified("vgg16")
        vgg = torchvision().models.vgg16()
        vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net = vgg.features[:16].to(device).eval().requires_grad_(False)
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=device)[:, None, None]
        self.std = torch.tensor([0.229, 0.224, 0.225], device=device)[:, None, None]

    def __call__(self, a, b):
        return (self.net((a - self.mean) / self.std) -
                self.net((b - self.mean) / self.std)).abs().mean()


def patch_discriminator():
    """pix2pix's PatchGAN, three strided layers (70×70-style receptive field, smaller)."""
    from torch import nn

    def block(i, o, norm=True):
        layers = [nn.Conv2d(i, o, 4, stride=2, padding=1)]
        if norm:
            layers.append(nn.InstanceNorm2d(o))
        return layers + [nn.LeakyReLU(0.2, inplace=True)]

    return nn.Sequential(*block(3, 32, norm=False), *block(32, 64), *block(64, 128),
                         nn.Conv2d(128, 1, 4, padding=1))
