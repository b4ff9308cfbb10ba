"""The peer baselines, all with the SDK's output contract.

Every ``forward(images [B,3,S,S])`` returns ``(image_logits [B,K+1], pixel_probs [B,K+1,S,S])``
(what :func:`train.losses.ipad_loss` takes); :func:`contract` turns that into the SDK's
``(class_probs, pixel_probs)`` so one metric code scores every method.

* :class:`UNet` - the "vision-only supervised" paradigm: a small U-Net, a classification head on the
  global-pooled bottleneck and a K+1-class segmentation head.
* :class:`FreqNet` - in the spirit of FreqNet (Tan et al., AAAI 2024): the network sees the
  FFT high-pass residual of the image, learns in frequency space inside the encoder (1x1 convs on
  the real/imaginary parts of each feature map's FFT) and its classifier also gets a log-amplitude
  spectrum branch; same heads as the U-Net.
* :class:`Reconstructor` - in the spirit of UniAD/Dinomaly: a noisy bottleneck (dropout MLP) and a
  small transformer reconstruct frozen ViT patch features of several blocks; the anomaly map is
  ``1 - cos(feature, reconstruction)``. It has no class output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def contract(image_logits: torch.Tensor, pixel_probs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(class_probs [B,K+1], pixel_probs [B,K+1,S,S])`` as the SDK returns them."""
    return image_logits.float().softmax(-1), pixel_probs.float()


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )  # fmt: skip


class FreqBlock(nn.Module):
    """Frequency-space learning (FreqNet): ``x + iFFT(conv1x1([Re, Im] of FFT(x)))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            nn.Conv2d(2 * channels, 2 * channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * channels, 2 * channels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft2(x.float(), norm="ortho")
        mixed = self.mix(torch.cat([spec.real, spec.imag], dim=1))
        real, imag = mixed.chunk(2, dim=1)
        return x + torch.fft.irfft2(torch.complex(real, imag), s=x.shape[-2:], norm="ortho")


class UNet(nn.Module):
    """A U-Net with ``len(widths)-1`` poolings, a classification and a segmentation head.

    The first conv has stride 2 (the net works at half the input size, for CPU budgets); the
    segmentation probabilities are bilinearly upsampled to the input size, as IPAD-CLIP's are.

    ``freq=True`` adds a :class:`FreqBlock` after every encoder level (used by :class:`FreqNet`).
    ``extra_cls`` widens the classifier input for subclasses that add pooled features.
    """

    def __init__(
        self,
        num_classes: int = 4,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        in_channels: int = 3,
        freq: bool = False,
        extra_cls: int = 0,
    ) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        self.freq = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.down.append(_block(cin, width, stride=1 if self.down else 2))
            self.freq.append(FreqBlock(width) if freq else nn.Identity())
            cin = width
        self.up = nn.ModuleList()
        for deep, shallow in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(_block(deep + shallow, shallow))
        self.seg = nn.Conv2d(widths[0], num_classes, 1)
        self.cls = nn.Sequential(nn.Dropout(0.1), nn.Linear(widths[-1] + extra_cls, num_classes))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder output ``[B,w0,S,S]`` and pooled bottleneck ``[B,w_last]``."""
        skips = []
        for index, (down, freq) in enumerate(zip(self.down, self.freq, strict=True)):
            if index:
                x = F.max_pool2d(x, 2)
            x = freq(down(x))
            skips.append(x)
        pooled = x.mean(dim=(2, 3))
        for up, skip in zip(self.up, skips[-2::-1], strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        return x, pooled

    def segment(self, decoded: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Per-pixel class probabilities at ``size`` from the decoder output."""
        probs = self.seg(decoded).softmax(dim=1)
        return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decoded, pooled = self.features(images)
        return self.cls(pooled), self.segment(decoded, images.shape[-2:])


def high_pass(images: torch.Tensor, cutoff: float = 0.1) -> torch.Tensor:
    """The image with spatial frequencies below ``cutoff`` (cycles/pixel, radial) removed."""
    h, w = images.shape[-2:]
    fy = torch.fft.fftfreq(h, device=images.device).view(-1, 1)
    fx = torch.fft.rfftfreq(w, device=images.device).view(1, -1)
    keep = ((fy**2 + fx**2).sqrt() >= cutoff).to(images.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(images.float()) * keep, s=(h, w))


def log_amplitude(images: torch.Tensor) -> torch.Tensor:
    """Centred log-amplitude spectrum ``log(1 + |FFT|)`` per channel, standardised per image."""
    amp = torch.fft.fftshift(torch.fft.fft2(images.float(), norm="ortho").abs(), dim=(-2, -1))
    spec = torch.log1p(amp)
    mean = spec.mean(dim=(1, 2, 3), keepdim=True)
    std = spec.std(dim=(1, 2, 3), keepdim=True)
    return (spec - mean) / (std + 1e-6)


class FreqNet(UNet):
    """FreqNet-like detector: input = image + its high-pass residual (6 channels), frequency-space
    blocks in the encoder, and a log-amplitude-spectrum CNN branch pooled into the classifier."""

    def __init__(self, num_classes: int = 4, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        spec_width = widths[1]
        super().__init__(num_classes, widths, in_channels=6, freq=True, extra_cls=spec_width)
        self.spectrum = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(widths[0], spec_width, 3, stride=2, padding=1), nn.BatchNorm2d(spec_width),
            nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        residual = high_pass(images)
        decoded, pooled = self.features(torch.cat([images, residual], dim=1))
        spec = self.spectrum(log_amplitude(residual)).mean(dim=(2, 3))
        logits = self.cls(torch.cat([pooled, spec], dim=1))
        return logits, self.segment(decoded, images.shape[-2:])


class Reconstructor(nn.Module):
    """Reconstruct ``[B,G,N,W]`` frozen patch features of ``G`` blocks from their mean, through a
    dropout-noised MLP bottleneck and ``depth`` transformer layers (Dinomaly's recipe, small)."""

    def __init__(
        self, width: int, groups: int, num_patches: int, depth: int = 2, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.groups = groups
        self.bottleneck = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(2 * width, width),
        )  # fmt: skip
        self.pos = nn.Parameter(torch.zeros(1, num_patches, width))
        layer = nn.TransformerEncoderLayer(
            width, nhead=max(1, width // 64), dim_feedforward=2 * width, dropout=0.0,
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.decoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Linear(width, groups * width)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, g, n, w = feats.shape
        x = self.decoder(self.bottleneck(feats.mean(dim=1)) + self.pos)
        return self.out(x).view(b, n, g, w).transpose(1, 2)


def cosine_distance(feats: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` per patch, averaged over groups: ``[B,G,N,W]`` x2 -> ``[B,N]`` in [0, 2]."""
    return (1.0 - F.cosine_similarity(feats, recon, dim=-1)).mean(dim=1)


def anomaly_contract(
    distance: torch.Tensor, grid: int, size: int, num_classes: int, top_fraction: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch distances ``[B,N]`` -> the SDK contract. The map ``a = distance / 2`` in [0, 1] is
    bilinearly upsampled to ``size``; image score = mean of its top ``top_fraction`` pixels.
    ``P(clean) = 1 - a`` and the K artifact classes share ``a`` equally (no class output)."""
    maps = (distance / 2).clamp(0, 1).view(-1, 1, grid, grid)
    maps = F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    k = max(1, round(top_fraction * size * size))
    score = maps.flatten(1).topk(k, dim=1).values.mean(dim=1)
    share = num_classes - 1

    def split(a: torch.Tensor) -> torch.Tensor:
        return torch.stack([1.0 - a] + [a / share] * share, dim=1)

    return split(score), split(maps)
