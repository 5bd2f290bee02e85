"""CelebAMask-HQ merged in the order of the face-parsing (BiSeNet) project rather than the
dataset's own (`--layout celebamask-hq-face-parsing`): for models and tools trained on
those ids. Part i is class i + 1, drawn over the parts before it; class 0 is the background.
"""

from __future__ import annotations

from p2phd.datasets.celebamask_hq import celebamask

PARTS = tuple(
    "skin l_brow r_brow l_eye r_eye eye_g l_ear r_ear ear_r nose mouth u_lip l_lip neck "
    "neck_l cloth hair hat".split()
)

DATASET = celebamask(
    "celebamask-hq-face-parsing",
    PARTS,
    "CelebAMask-HQ's 18 parts and background, in the face-parsing project's order",
    variant_of="celebamask-hq",
)
