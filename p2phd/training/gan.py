"""The nets being trained, their optimisers, and one training step.

The step computes G's and D's losses from one D pass over [fake; real] with D's weights
before either update: the reference's losses exactly (GAN loss on every D scale, feature
matching weighted 10 over D's layers, VGG19 perceptual loss weighted 10). Two backward
passes restricted to each net's parameters then fill G's and D's gradients: D's weights get
no gradient from G's loss, and the fake goes through D once, where the reference runs D
three times (fake detached, real, fake again).

Stages differ only in what is trainable: in the local stage G1 (`global_generator`) is
frozen by `requires_grad_(False)`, so no gradient is computed for it at all and Adam holds
only the enhancers; the joint stage trains everything (the reference meant to, but its
optimiser swap after niter_fix_global never takes effect).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from p2phd import losses
from p2phd.config import TrainConfig
from p2phd.loss_terms import LossTerms
from p2phd.nets.blocks import set_activation_checkpointing
from p2phd.nets.discriminator import build_discriminator
from p2phd.nets.encoder import build_encoder
from p2phd.nets.generator import LocalEnhancer, build_generator
from p2phd.nets.vgg import load_vgg19
from p2phd.ops import encode_label, generator_input, unit_image
from p2phd.runtime import autocast
from p2phd.training.average import WeightAverage
from p2phd.training.distributed import Dist

ADAM_BETA2 = 0.999  # the reference's, fixed


class Pix2PixHD:
    """G, D, the feature encoder E (runs with features), the frozen VGG19 of the perceptual
    loss, and Adam for G (+ E: E learns only through G's losses, as in the reference) and D."""

    def __init__(self, cfg: TrainConfig, precision: str, dist: Dist) -> None:
        """The nets start from torch's global RNG: seed it first for a reproducible start."""
        self.cfg, self.precision, self.dist = cfg, precision, dist
        device = self.device = dist.device
        self.G = build_generator(cfg.net).to(device)
        self.D = build_discriminator(cfg.net).to(device)
        self.E = build_encoder(cfg.net).to(device) if cfg.net.use_features else None
        self.vgg = None
        if cfg.loss.vgg_loss:  # training_config checked the file (run_config._with_vgg_hash)
            self.vgg = load_vgg19(str(cfg.run.vgg_weights)).to(device)
        if cfg.stage == "local":
            assert isinstance(self.G, LocalEnhancer)
            self.G.global_generator.requires_grad_(False)
        for net in (self.G, self.D):
            set_activation_checkpointing(net, cfg.run.activation_checkpointing)
        self.memory_format = torch.channels_last if cfg.run.channels_last else None
        if self.memory_format is not None:
            for part in (self.G, self.D, self.vgg):
                if part is not None:
                    part.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        betas = (cfg.optim.beta1, ADAM_BETA2)
        trainable = [p for p in self.G.parameters() if p.requires_grad]
        if self.E is not None:
            trainable += list(self.E.parameters())
        # Fused: one kernel for the whole update, and it can skip a step on a device flag
        # (`update(skip=...)`) without the host reading it.
        self.opt_g = torch.optim.Adam(trainable, cfg.optim.lr, betas, fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.optim.lr, betas, fused=True)
        self.g_fwd, self.d_fwd = self._wrap(self.G), self._wrap(self.D)
        self.e_fwd = self._wrap(self.E) if self.E is not None else None
        # Moving averages of G and E (training/average.py), made equal to them once the
        # weights are loaded (training/state.py)
        self.averages: dict[str, WeightAverage] = {}
        if cfg.optim.ema_beta > 0:
            beta, start = cfg.optim.ema_beta, cfg.optim.ema_start
            self.averages["G"] = WeightAverage(self.G, beta, start)
            if self.E is not None:
                self.averages["E"] = WeightAverage(self.E, beta, start)
        self.losses = self.compute_losses
        if cfg.run.compile and not dist.enabled:
            # G, E, D, VGG and every loss term as one graph, forward and backward
            self.losses = torch.compile(self.compute_losses, fullgraph=True)

    def _wrap(self, net: nn.Module) -> Any:
        """DDP under torchrun (gradients averaged over ranks), then torch.compile if asked:
        under DDP each net compiles apart, as DDP's gradient buckets split the graph."""
        if not self.dist.enabled:
            return net
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DistributedDataParallel(net, device_ids=ids)
        return torch.compile(ddp) if self.cfg.run.compile else ddp

    def set_lr(self, lr: float) -> None:
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr

    def compute_losses(
        self, x: Tensor, real: Tensor, pool: Tensor | None = None
    ) -> tuple[Tensor, LossTerms[Tensor]]:
        """The fake and the five loss terms with their weights applied. With features, E
        encodes the real image, pooled per region of `pool`, and its maps join G's input."""
        cfg = self.cfg
        with autocast(self.precision, self.device):
            features = None
            if self.e_fwd is not None:
                assert pool is not None
                features = self.e_fwd(real, pool)
            fake = self.g_fwd(generator_input(x, features))
            both = torch.cat([torch.cat([x, fake], 1), torch.cat([x, real], 1)], 0)
            outs = self.d_fwd(both)
        n = x.shape[0]
        fake_outs = [[t[:n] for t in scale] for scale in outs]
        real_outs = [[t[n:] for t in scale] for scale in outs]
        d_real, d_fake = losses.gan_d_loss(cfg.loss.gan_mode, real_outs, fake_outs)
        zero = fake.new_zeros((), dtype=torch.float32)
        g_feat = zero
        if cfg.loss.ganfeat_loss:
            g_feat = losses.feature_matching_loss(fake_outs, real_outs) * cfg.loss.lambda_feat
        g_vgg = zero
        if self.vgg is not None:
            with autocast(self.precision, self.device):
                g_vgg = losses.vgg_loss(self.vgg, fake, real) * cfg.loss.lambda_feat
        g_gan = losses.gan_g_loss(cfg.loss.gan_mode, fake_outs)
        return fake, LossTerms(g_gan, g_feat, g_vgg, d_real, d_fake)

    def backward(
        self, x: Tensor, real: Tensor, pool: Tensor | None = None
    ) -> tuple[Tensor, LossTerms[Tensor], Tensor]:
        """Losses and gradients of one step, weights untouched: (the fake, the loss terms,
        whether every loss is finite, as a 0-d bool tensor on the device: no host sync)."""
        fake, terms = self.losses(x, real, pool)
        loss_g, loss_d = terms.g_total(), terms.d_total()
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        torch.autograd.backward(
            loss_g, inputs=self.opt_g.param_groups[0]["params"], retain_graph=True
        )
        torch.autograd.backward(loss_d, inputs=self.opt_d.param_groups[0]["params"])
        finite = torch.isfinite(loss_g + loss_d)
        return fake.detach(), LossTerms(*(v.detach() for v in terms)), finite

    def update(self, skip: Tensor | None = None) -> None:
        """Adam steps for G (+ E) and D with the gradients `backward` left. `skip`, a 0-d
        float tensor on the device (1: skip), leaves weights and moments as they were, read
        by the fused kernels themselves: the host never waits for it."""
        for opt in (self.opt_g, self.opt_d):
            opt.found_inf = skip  # type: ignore[attr-defined]  # the fused step's own skip flag
            opt.grad_scale = None  # type: ignore[attr-defined]
            opt.step()

    def step(
        self, x: Tensor, real: Tensor, pool: Tensor | None = None, *, stop: bool = False
    ) -> tuple[Tensor, LossTerms[Tensor], Tensor]:
        """One training step, as the trainer runs it: losses and gradients, then the Adam
        updates, skipped on every rank alike if any rank's losses are not finite. Returns the
        fake, the loss terms and the step's flags `[skipped, stop asked]` (0-d floats on the
        device, maxed over the ranks: whether any rank skipped, any rank was asked to stop),
        which the host reads when it needs them, never at once."""
        fake, terms, finite = self.backward(x, real, pool)
        flags = torch.stack(
            [(~finite).float(), finite.new_tensor(float(stop), dtype=torch.float32)]
        )
        self.dist.max_(flags)  # every rank skips and stops alike
        self.update(skip=flags[0])
        return fake, terms, flags

    def update_averages(self, step: int) -> None:
        """After training step `step`: the moving averages follow the weights."""
        for average in self.averages.values():
            average.update(step)

    def step_inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
        """A loader batch on the device, as the step takes it: (the encoded label: G's input
        without features and D's condition; the real image in [-1, 1]; the map E's features
        are pooled over, or None without features)."""
        net, device = self.cfg.net, self.device
        label = batch["label"].to(device, non_blocking=True)
        if net.label_nc == 0:
            label = unit_image(label)
        inst = batch["inst"].to(device, non_blocking=True) if net.instance else None
        x = encode_label(label, inst, label_nc=net.label_nc)
        real = unit_image(batch["image"].to(device, non_blocking=True))
        if self.memory_format is not None:
            x, real = (t.contiguous(memory_format=self.memory_format) for t in (x, real))
        return x, real, net.pool_map(label, inst) if net.use_features else None
