import pytest
import torch

from esrgan.models.discriminator import VGGDiscriminator
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet, count_parameters


def test_paper_size_parameter_count() -> None:
    assert count_parameters(RRDBNet(RRDBConfig())) == 16_697_987


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_output_shape_per_scale(scale: int) -> None:
    net = RRDBNet(RRDBConfig(nf=8, nb=1, gc=4, scale=scale)).eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 16, 12))
    assert out.shape == (2, 3, 16 * scale, 12 * scale)


def test_no_batch_norm_in_generator() -> None:
    net = RRDBNet(RRDBConfig(nf=8, nb=2, gc=4))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def test_dense_block_init_is_small() -> None:
    torch.manual_seed(0)
    net = RRDBNet(RRDBConfig(nf=64, nb=1, gc=32))
    dense_std = net.body[0].rdb1.conv1.weight.std().item()
    plain = torch.nn.Conv2d(64, 32, 3)
    torch.nn.init.kaiming_normal_(plain.weight)
    assert dense_std == pytest.approx(plain.weight.std().item() * 0.1, rel=0.1)
    assert torch.count_nonzero(net.body[0].rdb1.conv1.bias) == 0


def test_bad_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        RRDBConfig(scale=3)


def test_discriminator_shapes_and_size_error() -> None:
    disc = VGGDiscriminator()
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10 and convs[0].out_channels == 64 and convs[-1].out_channels == 512
    assert disc.linear1.in_features == 8192
    assert disc(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(ValueError, match="128x128"):
        disc(torch.rand(1, 3, 96, 96))
