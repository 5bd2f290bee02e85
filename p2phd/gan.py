"""The nets being trained, their optimisers, and one training step (REFERENCE.md §1.8, §2).

The step computes G's and D's losses from one D pass over [fake; real] with D's weights
before either update, exactly the reference's losses, then fills G's gradients and D's
gradients with two backward passes restricted to each net's parameters: D's weights get no
gradient from G's loss, and the fake goes through D once, not twice (REFERENCE.md §7.15).

Stages differ only in what is trainable: in the local stage G1 (`global_generator`) is
frozen by `requires_grad_(False)`, so no gradient is computed for it at all and Adam holds
only the enhancers; the joint stage trains everything (REFERENCE.md §7.1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from p2phd import losses
from p2phd.checkpoint import Checkpoint, load_strict, optimizer_tensors, restore_optimizer
from p2phd.config import TrainConfig
from p2phd.distributed import Dist
from p2phd.errors import CheckpointError
from p2phd.nets.blocks import set_activation_checkpointing
from p2phd.nets.discriminator import build_discriminator
from p2phd.nets.encoder import build_encoder
from p2phd.nets.generator import LocalEnhancer, build_generator
from p2phd.nets.vgg import load_vgg19
from p2phd.ops import encode_input, unit_image
from p2phd.runtime import autocast, seed_everything, use_fast_kernels


class Pix2PixHD:
    """G, D, the feature encoder E (runs with features), the frozen VGG19 of the perceptual
    loss, and Adam for G (+ E: E learns only through G's losses, as in the reference) and D."""

    def __init__(self, cfg: TrainConfig, precision: str, dist: Dist) -> None:
        self.cfg, self.precision, self.dist = cfg, precision, dist
        device = self.device = dist.device
        use_fast_kernels(device)
        seed_everything(cfg.optim.seed)
        self.G = build_generator(cfg.net).to(device)
        self.D = build_discriminator(cfg.net).to(device)
        self.E = build_encoder(cfg.net).to(device) if cfg.net.use_features else None
        self.vgg = None
        if cfg.loss.vgg_loss:
            assert cfg.run.vgg_weights is not None  # checked before training starts
            self.vgg = load_vgg19(cfg.run.vgg_weights).to(device)
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
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        fused = device.type == "cuda"  # one kernel for the whole update
        trainable = [p for p in self.G.parameters() if p.requires_grad]
        if self.E is not None:
            trainable += list(self.E.parameters())
        self.opt_g = torch.optim.Adam(trainable, cfg.optim.lr, betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.optim.lr, betas, fused=fused)
        self.g_fwd, self.d_fwd = self._wrap(self.G), self._wrap(self.D)
        self.e_fwd = self._wrap(self.E) if self.E is not None else None

    def _wrap(self, net: nn.Module) -> Any:
        """DDP under torchrun (gradients averaged over ranks), then torch.compile if asked."""
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(net, device_ids=ids)
        return torch.compile(net) if self.cfg.run.compile else net

    def set_lr(self, lr: float) -> None:
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr

    def encode(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor | None]:
        """From a loader batch, on the device: (the encoded label, i.e. G's input without
        features and D's condition; the real image in [-1, 1]; E's pooling map or None)."""
        net, dev = self.cfg.net, self.device
        label = batch["label"].to(dev, non_blocking=True)
        if net.label_nc == 0:
            label = unit_image(label)
        inst = batch["inst"].to(dev, non_blocking=True) if net.instance else None
        x = encode_input(label, inst, label_nc=net.label_nc)
        real = unit_image(batch["image"].to(dev, non_blocking=True))
        if self.memory_format is not None:
            x, real = (t.contiguous(memory_format=self.memory_format) for t in (x, real))
        pool = None
        if net.use_features:
            pool = inst if net.instance_feat else label
        return x, real, pool

    def compute_losses(
        self, x: Tensor, real: Tensor, pool: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The fake and the five loss terms with their weights applied. With features, E
        encodes the real image, pooled per region of `pool`, and its maps join G's input."""
        cfg = self.cfg
        with autocast(self.precision, self.device):
            g_in = x
            if self.e_fwd is not None:
                assert pool is not None
                g_in = torch.cat([x, self.e_fwd(real, pool).to(x.dtype)], 1)
            fake = self.g_fwd(g_in)
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
                perceptual = losses.vgg_loss(
                    self.vgg, fake, real, imagenet_norm=cfg.loss.vgg_imagenet_norm
                )
            g_vgg = perceptual * cfg.loss.lambda_feat
        g_gan = losses.gan_g_loss(cfg.loss.gan_mode, fake_outs)
        terms = {"g_gan": g_gan, "g_feat": g_feat, "g_vgg": g_vgg}
        return fake, {**terms, "d_real": d_real, "d_fake": d_fake}

    def train_step(
        self, x: Tensor, real: Tensor, pool: Tensor | None = None, stop: bool = False
    ) -> tuple[Tensor, dict[str, Tensor], bool, bool]:
        """One G and one D update, skipped (weights untouched) if a loss is not finite.

        Returns (fake, loss terms, finite, stop): under torchrun every rank skips when any
        rank's losses are not finite, and stops when any rank was asked to stop.
        """
        fake, terms = self.compute_losses(x, real, pool)
        loss_g = terms["g_gan"] + terms["g_feat"] + terms["g_vgg"]
        loss_d = 0.5 * (terms["d_real"] + terms["d_fake"])
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        torch.autograd.backward(
            loss_g, inputs=self.opt_g.param_groups[0]["params"], retain_graph=True
        )
        torch.autograd.backward(loss_d, inputs=self.opt_d.param_groups[0]["params"])
        bad = not bool(torch.isfinite(loss_g + loss_d))  # the step's one host sync
        bad, stop = self.dist.any(bad, stop)
        if not bad:
            self.opt_g.step()
            self.opt_d.step()
        return fake.detach(), {k: v.detach() for k, v in terms.items()}, not bad, stop

    # ---- state for checkpoints -----------------------------------------------------------
    def _names(self) -> tuple[dict[int, str], dict[int, str]]:
        """Parameter names for the optimiser files; E's share G's optimiser as `encoder.*`."""
        g = {id(p): n for n, p in self.G.named_parameters()}
        if self.E is not None:
            g |= {id(p): f"encoder.{n}" for n, p in self.E.named_parameters()}
        return g, {id(p): n for n, p in self.D.named_parameters()}

    def state(self) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
        """(tensors per file, JSON-able optimiser groups) for a checkpoint."""
        g_names, d_names = self._names()
        g_opt, g_group = optimizer_tensors(self.opt_g, g_names, "G")
        d_opt, d_group = optimizer_tensors(self.opt_d, d_names, "D")
        tensors = {"G": self.G.state_dict(), "D": self.D.state_dict(), "optim": {**g_opt, **d_opt}}
        if self.E is not None:
            tensors["E"] = self.E.state_dict()
        return tensors, {"G": g_group, "D": d_group}

    def load(self, ckpt: Checkpoint) -> None:
        """Weights and optimiser state from a checkpoint of this run, strictly. Entering the
        joint stage from a local checkpoint, G1's parameters start with fresh Adam moments."""
        load_strict(self.G, ckpt.tensors("G"), f"{ckpt.path}/G.safetensors")
        load_strict(self.D, ckpt.tensors("D"), f"{ckpt.path}/D.safetensors")
        if self.E is not None:
            load_strict(self.E, ckpt.tensors("E"), f"{ckpt.path}/E.safetensors")
        optim = ckpt.tensors("optim")
        g_names, d_names = self._names()
        unfreezing = self.cfg.stage == "joint" and ckpt.state["stage"] == "local"
        restore_optimizer(
            self.opt_g, optim, ckpt.state["optim"]["G"], g_names, "G", allow_new=unfreezing
        )
        restore_optimizer(self.opt_d, optim, ckpt.state["optim"]["D"], d_names, "D")

    def init_from_global(self, ckpt: Checkpoint) -> None:
        """Start the local stage from a global run: its G1 weights go into
        `global_generator` (strictly, all but the unused image head) and its D scales into
        the coarsest scales of this D, which see the same absolute resolutions as before."""
        assert isinstance(self.G, LocalEnhancer)
        g1 = {
            k.removeprefix("trunk."): v
            for k, v in ckpt.tensors("G").items()
            if k.startswith("trunk.")
        }
        load_strict(self.G.global_generator.trunk, g1, f"{ckpt.path}/G.safetensors (trunk)")
        if self.E is not None:
            load_strict(self.E, ckpt.tensors("E"), f"{ckpt.path}/E.safetensors")
        d = ckpt.tensors("D")
        loaded = len({k.split(".")[1] for k in d})
        if loaded > len(self.D.scales):
            raise CheckpointError(
                f"{ckpt.path}/D.safetensors has {loaded} scales but --num-d is "
                f"{len(self.D.scales)}; use --num-d {loaded} or more"
            )
        for k in range(loaded):
            prefix = f"scales.{k}."
            part = {key.removeprefix(prefix): v for key, v in d.items() if key.startswith(prefix)}
            load_strict(self.D.scales[k], part, f"{ckpt.path}/D.safetensors (scale {k})")
