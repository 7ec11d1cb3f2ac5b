"""Network interpolation (ESRGAN section 3.4): theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN, per parameter.

It only gives sensible pictures when the GAN model was fine-tuned from the PSNR model (the paper's two stages, or
RealESRNet -> RealESRGAN): then both sit in the same basin and the blend trades detail against artefacts smoothly.
Two independently trained networks with the same architecture blend into noise, and nothing here can detect that.

alpha = 0 and alpha = 1 copy the inputs instead of computing 1*a + 0*b, so the endpoints are bit-exact.
"""

import math

import torch
from torch import nn

from esrgan.models.checkpoints import StateDict


def check_alpha(alpha: float) -> float:
    """`alpha` as a float, or ValueError unless it is a finite number in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise ValueError(f"alpha must be a number in [0, 1], not {alpha!r}")
    if not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be finite and in [0, 1], got {alpha}")
    return float(alpha)


def check_compatible(psnr: StateDict, gan: StateDict, what: str = "the GAN weights") -> None:
    """Same keys and same shapes, or a ValueError that names the first differences."""
    missing = [k for k in psnr if k not in gan]
    extra = [k for k in gan if k not in psnr]
    if missing or extra:
        raise ValueError(
            f"{what} do not match the PSNR weights (different architectures?): "
            f"missing {missing[:5]}, unexpected {extra[:5]}"
        )
    shapes = [f"{k}: {tuple(psnr[k].shape)} vs {tuple(gan[k].shape)}" for k in psnr if psnr[k].shape != gan[k].shape]
    if shapes:
        raise ValueError(f"{what} have other shapes than the PSNR weights (different architectures?): {shapes[:4]}")
    not_float = [k for k in psnr if not (psnr[k].is_floating_point() and gan[k].is_floating_point())]
    if not_float:
        raise ValueError(f"cannot interpolate non-floating-point tensors: {not_float[:5]}")


def interpolate_state_dicts(psnr: StateDict, gan: StateDict, alpha: float) -> StateDict:
    """A new state dict holding the blend; at alpha 0 or 1 exact copies of `psnr` or `gan`."""
    alpha = check_alpha(alpha)
    check_compatible(psnr, gan)
    if alpha == 0.0:
        return {k: v.clone() for k, v in psnr.items()}
    if alpha == 1.0:
        return {k: v.clone() for k, v in gan.items()}
    out: StateDict = {}
    for key, a in psnr.items():
        b = gan[key]
        dtype = torch.promote_types(a.dtype, b.dtype)
        out[key] = torch.lerp(a.to(dtype), b.to(dtype), alpha)
    return out


@torch.no_grad()
def interpolate_into(model: nn.Module, psnr: StateDict, gan: StateDict, alpha: float) -> None:
    """Write the blend straight into `model`'s existing parameters: no new model, no new state dict.

    Keep `psnr` and `gan` on the model's device and dtype: then each parameter costs one fused lerp and nothing
    is allocated; otherwise each tensor is converted on the way (correct, only slower).
    """
    alpha = check_alpha(alpha)
    check_compatible(psnr, gan)
    target = model.state_dict(keep_vars=True)
    check_compatible(psnr, target, what="the model's parameters")
    for key, param in target.items():
        a = psnr[key].to(param.device, param.dtype)
        b = gan[key].to(param.device, param.dtype)
        if alpha == 0.0:
            param.copy_(a)
        elif alpha == 1.0:
            param.copy_(b)
        else:
            torch.lerp(a, b, alpha, out=param)
