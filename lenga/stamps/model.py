"""The stamp classifier network: a small CNN with cyclic rotation invariance, plus metadata.

An astronomical image has no preferred orientation, so the classification of a stamp must not
change when it is rotated. Following Dieleman, De Fauw & Kavukcuoglu (2016), and as ALeRCE's
stamp classifier does (Carrasco-Davis et al. 2021, Fig. 3), the same convolutional trunk (shared
weights) sees the four 90-degree rotations of the 3x21x21 input and their feature vectors are
averaged ("cyclic pooling"): the pooled features, and hence the output, are exactly invariant to
those rotations. The standardised metadata (:mod:`lenga.stamps.features`) are concatenated to the
pooled image features before the dense layers; a softmax over the five classes ends the network.

The trunk is deliberately small (three 3x3 convolutions, 16-32 channels, ~50k parameters): the
21x21 crops hold little more than a PSF, and >= 2,000 alerts/s must run on two CPU cores.
The metadata standardisation (training-set mean and standard deviation) is stored in the
state_dict as buffers, so the weights file alone reproduces the predictions.
"""

from __future__ import annotations

import torch
from torch import nn

from lenga.stamps import CLASSES
from lenga.stamps.preprocess import CROP

N_CHANNELS = 3  # science, template, difference
# Convolution widths and dense width; dropout before the last layer (Srivastava et al. 2014).
CONV_CHANNELS = (16, 32, 32)
DENSE_UNITS = 64
DROPOUT = 0.3
#: Files of a trained model directory: the state_dict, and the metadata (features, versions).
#: Here, not in the training module, so that inference does not import training dependencies
#: (scikit-learn: ~1.6 s of CPU per fresh Spark Python worker).
WEIGHTS_FILE = "weights.pt"
MODEL_FILE = "model.json"


class StampCNN(nn.Module):
    """(images (N, 3, 21, 21), metadata (N, n_features)) -> logits (N, 5)."""

    def __init__(self, n_features: int, n_classes: int = len(CLASSES)):
        super().__init__()
        c1, c2, c3 = CONV_CHANNELS
        self.trunk = nn.Sequential(
            nn.Conv2d(N_CHANNELS, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 21 -> 10
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 10 -> 5
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c3 * (CROP // 4) ** 2, DENSE_UNITS), nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Linear(DENSE_UNITS + n_features, DENSE_UNITS), nn.ReLU(), nn.Dropout(DROPOUT),
            nn.Linear(DENSE_UNITS, n_classes),
        )
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Store the training set's feature mean and std (a constant feature keeps std 1)."""
        std = features.std(dim=0)
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, images: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        # The four rotations as one batch through the shared trunk, then averaged.
        rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
        pooled = self.trunk(rotated).view(4, n, -1).mean(dim=0)
        meta = (features - self.feature_mean) / self.feature_std
        return self.head(torch.cat([pooled, meta], dim=1))
