"""Selective write-verify (SWIM-style): rank weights by sensitivity, verify the top ones.

SWIM (Yan et al., DAC 2022) write-verifies only the weights whose perturbation costs the most
loss. To second order the expected loss increase of weight ``i`` perturbed by ``N(0, s_i)`` is
``0.5 * H_ii * s_i**2``; ``H_ii`` is estimated with the diagonal empirical Fisher (mean squared
per-sample gradient, a standard positive estimate of the Hessian diagonal at a trained
minimum). ``magnitude`` ranking (|w|) is the cheap baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from .devices import weight_sigma_formula
from .errors import CIMConfigError
from .layers import CIMLayer, Mode
from .network import cim_layers


def _fisher_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 128) -> dict[str, torch.Tensor]:
    names = [f"{n}.weight" for n, _ in cim_layers(model)]
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_fn(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_sample = vmap(grad(loss_fn), in_dims=(None, 0, 0))
    acc = {k: torch.zeros_like(params[k]) for k in names}
    for i in range(0, x.shape[0], chunk):
        grads = per_sample(params, x[i : i + chunk], y[i : i + chunk])
        for k in names:
            acc[k] += (grads[k] ** 2).sum(0)
    return {k[: -len(".weight")]: v / x.shape[0] for k, v in acc.items()}


def sensitivity_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str = "hessian") -> dict[str, torch.Tensor]:
    """Per-weight scores for every CIM layer (higher = verify first)."""
    layers = dict(cim_layers(model))
    if method == "magnitude":
        return {n: layer.weight.detach().abs() for n, layer in layers.items()}
    if method != "hessian":
        raise CIMConfigError(f"unknown sensitivity method {method!r} (magnitude or hessian)")
    modes = {n: layer.mode for n, layer in layers.items()}
    for layer in layers.values():
        layer.mode = Mode.DIGITAL
    model.eval()  # DAC range observers must not run under vmap
    try:
        fisher = _fisher_diagonal(model, x, y)
    finally:
        for n, layer in layers.items():
            layer.mode = modes[n]
    return {n: fisher[n] * _layer_weight_sigma(layers[n]) ** 2 for n in layers}


def _layer_weight_sigma(layer: CIMLayer) -> float:
    cfg = layer.cim_config
    if cfg.weight_bits is None:
        return 1.0
    w_max = float(layer.weight.detach().abs().max())
    return weight_sigma_formula(max(cfg.sigma_rel, 1e-12), w_max, cfg.weight_bits, cfg.device.bits_per_device)


def top_k_masks(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Boolean masks selecting the ``k`` highest scores across all layers."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    if not 0 <= k <= flat.numel():
        raise CIMConfigError(f"k={k} outside [0, {flat.numel()}]")
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    if k:
        chosen[torch.topk(flat, k).indices] = True
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = chosen[start : start + s.numel()].view_as(s)
        start += s.numel()
    return masks


def squared_gradient_scores(layers: dict[str, nn.Module], losses) -> dict[str, torch.Tensor]:
    """SWIM-style scores for large models, where per-sample Hessian estimates do not fit: the
    squared gradient of each batch loss, summed over ``losses`` (callables that run a forward
    and return the loss), times the square of the row's weight scale (a programming error is
    proportional to the row's largest weight once every row has its own scale).
    ``layers`` maps names to modules with a ``weight``; their gradients are used and cleared."""
    weights = {name: layer.weight for name, layer in layers.items()}
    saved = {name: w.requires_grad for name, w in weights.items()}
    scores = {name: torch.zeros_like(w, dtype=torch.float32) for name, w in weights.items()}
    try:
        for w in weights.values():
            w.requires_grad_(True)
        for loss in losses:
            for w in weights.values():
                w.grad = None
            loss().backward()
            for name, w in weights.items():
                scores[name] += w.grad.float() ** 2
    finally:
        for name, w in weights.items():
            w.grad = None
            w.requires_grad_(saved[name])
    rows = {name: w.detach().abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) for name, w in weights.items()}
    return {name: scores[name] * rows[name] ** 2 for name in weights}
