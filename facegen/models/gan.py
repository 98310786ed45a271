"""What every GAN of facegen shares: the input gradient of R1 and path-length penalties, the float16
GradScaler lookup and the one policy for non-finite losses and gradients.

Used by StyleGAN2 (and its region discriminators) and FaceTuneGAN, both trained with manual optimisation.
"""
from __future__ import annotations

import torch
from lightning.pytorch import LightningModule


def grad_scaler(module: LightningModule) -> torch.amp.GradScaler | None:
    """The enabled float16 ``GradScaler`` of the trainer's precision plugin, else ``None`` (fp32, bf16, no trainer).

    Lightning scales ``manual_backward`` but not ``torch.autograd.grad``: penalties that differentiate through
    the network (R1, path length) pass this scaler to :func:`input_gradient`.
    """
    trainer = module._trainer
    scaler = getattr(trainer.precision_plugin, "scaler", None) if trainer is not None else None
    return scaler if scaler is not None and scaler.is_enabled() else None


def input_gradient(output: torch.Tensor, inputs: torch.Tensor,
                   scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """``d output.sum() / d inputs`` with ``create_graph=True`` (so the penalty trains the network).

    With an enabled ``GradScaler`` the sum is scaled before and the gradient unscaled after (PyTorch AMP
    "gradient penalty" recipe), so float16 gradients do not underflow. Returns a tensor shaped as ``inputs``.
    """
    total = output.sum()
    if scaler is not None and scaler.is_enabled():
        (grad,) = torch.autograd.grad(scaler.scale(total), inputs, create_graph=True)
        return grad * (1.0 / scaler.get_scale())
    (grad,) = torch.autograd.grad(total, inputs, create_graph=True)
    return grad


def r1_penalty(real_input: torch.Tensor, real_logits: torch.Tensor,
               scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """R1: the squared norm of D's gradient at real samples, per sample (Mescheder et al. 2018, eq. 9).

    Args:
        real_input: ``[B, ...]`` real images ``[B, C, H, W]`` or meshes ``[B, V, 3]``, with ``requires_grad``.
        real_logits: ``[B]`` or ``[B, 1]`` logits computed from ``real_input`` (through ADA when used).
        scaler: see :func:`input_gradient`.
    Returns:
        ``[B]`` float32 ``||d D(x) / d x||^2``; the loss term is ``r1_gamma / 2 * penalty`` (NVlabs
        ``StyleGAN2Loss``; FUNIT and FaceTuneGAN take its batch mean).
    """
    grad = input_gradient(real_logits, real_input, scaler)
    return grad.float().square().flatten(1).sum(1)


def finite_everywhere(module: LightningModule, value: torch.Tensor) -> bool:
    """True when ``value`` is finite on every process (a skipped step must be skipped on all DDP ranks)."""
    finite = bool(torch.isfinite(value.detach()).all())
    trainer = module._trainer
    return bool(trainer.strategy.reduce_boolean_decision(finite, all=True)) if trainer is not None else finite


def guarded_step(module: LightningModule, optimizer, loss: torch.Tensor, *modules: torch.nn.Module | None,
                 guard: torch.Tensor | None = None) -> bool:
    """One optimiser step under facegen's non-finite policy; returns whether the step was taken.

    - ``guard`` (default ``loss``) non-finite on any process: no backward, no step (the caller counts it; the
      :class:`~facegen.callbacks.divergence.DivergenceMonitor` stops a run that keeps failing);
    - otherwise backward, then the gradients of ``modules`` pass through ``nan_to_num`` (NVlabs
      ``training_loop.py``: a stray inf in one parameter's gradient does not poison Adam's moments),
      except under a GradScaler, which skips non-finite steps and lowers its scale itself.
    """
    if not finite_everywhere(module, loss if guard is None else guard):
        return False
    optimizer.zero_grad(set_to_none=True)
    module.manual_backward(loss)
    if grad_scaler(module) is None:
        for p in (p for m in modules if m is not None for p in m.parameters()):
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
    optimizer.step()
    return True
