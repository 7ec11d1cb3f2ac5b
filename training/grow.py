"""A deeper generator that starts as a trained shallower one: stage 1 continues with more capacity, not from scratch.

RRDBs are appended to the trunk so that the network computes exactly what it did. A dense block whose last conv is zero
is the identity (`x5 * 0.2 + x` with x5 = 0), so a new RRDB of three returns `x * 0.2 + x = 1.2 x`; `conv_body` is
linear in the trunk's output, so dividing its weights by 1.2 per new RRDB undoes that. The last convs get gradients
from the first step (their inputs are not zero), and the blocks' other convs keep the paper's init and wake up as
soon as their last conv moves, as in zero-initialised residual branches (Goyal et al., 2017).
"""

import dataclasses

import torch

from esrgan.models.rrdbnet import RRDBNet

RRDB_GAIN = 1.2  # an RRDB of identity dense blocks: x * 0.2 + x


def deepened(g: RRDBNet, nb: int) -> RRDBNet:
    """`g` with `nb - g.config.nb` new RRDBs at the end of its trunk, computing the same function as `g`."""
    extra = nb - g.config.nb
    if extra < 0:
        raise ValueError(f"cannot deepen a {g.config.nb}-block trunk to {nb} blocks")
    grown = RRDBNet(dataclasses.replace(g.config, nb=nb))
    state = grown.state_dict()
    state.update({key: value.clone() for key, value in g.state_dict().items()})
    for block in range(g.config.nb, nb):
        for rdb in ("rdb1", "rdb2", "rdb3"):
            state[f"body.{block}.{rdb}.conv5.weight"].zero_()
            state[f"body.{block}.{rdb}.conv5.bias"].zero_()
    state["conv_body.weight"] = g.state_dict()["conv_body.weight"] / torch.tensor(RRDB_GAIN) ** extra
    grown.load_state_dict(state)
    return grown
