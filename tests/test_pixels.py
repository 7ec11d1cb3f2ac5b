"""The picture rules on their own, with a 'network' that is the identity: what goes in, and that `finish` undoes it."""

import numpy as np
import torch

from esrgan.models.images import Picture
from esrgan.models.pixels import network_input


def identity(tiles: torch.Tensor) -> torch.Tensor:
    return tiles.clone()


def round_trip(picture: Picture) -> tuple[torch.Tensor, np.ndarray]:
    """(the network's input, the finished picture's pixels) through an identity network at scale 1."""
    net = network_input(picture)
    rows = net.through(identity)(net.tensor)
    return net.tensor, net.finish(rows)[0].permute(1, 2, 0).numpy()


def test_grey_goes_in_as_three_equal_channels_and_comes_back_as_one() -> None:
    grey = np.random.default_rng(0).random((5, 7, 1), dtype=np.float32)
    net_in, out = round_trip(Picture(grey))
    assert net_in.shape == (1, 3, 5, 7) and all(torch.equal(net_in[0, c], net_in[0, 0]) for c in (1, 2))
    np.testing.assert_allclose(out, grey, atol=1e-6)


def test_transparency_is_premultiplied_on_the_way_in_and_divided_out_at_the_end() -> None:
    rgba = np.random.default_rng(1).random((4, 6, 4), dtype=np.float32)
    rgba[0, :, 3] = 0.0  # a transparent row: its colour must not reach the network
    net_in, out = round_trip(Picture(rgba))
    assert net_in.shape == (1, 6, 4, 6)
    np.testing.assert_allclose(net_in[0, :3].permute(1, 2, 0).numpy(), rgba[..., :3] * rgba[..., 3:], atol=1e-6)
    assert torch.equal(net_in[0, 3], net_in[0, 5]) and np.allclose(net_in[0, 3].numpy(), rgba[..., 3])
    assert (out[0, :, :3] == 0).all()  # colour under alpha 0 is 0, whatever it was
    np.testing.assert_allclose(out[1:], rgba[1:], atol=1e-5)


def test_an_opaque_alpha_skips_the_network_and_stays_opaque() -> None:
    la = np.ones((3, 3, 2), dtype=np.float32)
    la[..., 0] = 0.25
    net = network_input(Picture(la, bits=16))
    assert net.tensor.shape == (1, 3, 3, 3) and net.out_dtype == torch.uint16
    out = net.finish(net.through(identity)(net.tensor))
    assert out.shape == (1, 2, 3, 3) and (out[0, 1] == 1).all() and torch.allclose(out[0, 0], torch.tensor(0.25))
