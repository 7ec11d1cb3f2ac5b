"""Tiled inference against the whole-image forward: blending, border handling, batching, OOM, progress, cancel."""

import pytest
import torch
import torch.nn.functional as F

from esrgan.models.rrdbnet import RRDBConfig, RRDBNet
from esrgan.models.tiling import Cancelled, blend_weights, tiled_forward, window_size, window_starts


def nearest(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=4, mode="nearest")


@pytest.fixture(scope="module")
def net() -> RRDBNet:
    """A tiny RRDBNet with PyTorch's default (not 0.1-scaled) init, so tile borders visibly change its output."""
    torch.manual_seed(0)
    model = RRDBNet(RRDBConfig(nf=8, nb=1, gc=4)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.reset_parameters()
    return model


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


@pytest.mark.parametrize("n,tile,overlap,align", [(130, 32, 8, 1), (77, 40, 12, 1), (100, 32, 12, 4), (33, 16, 7, 1)])
def test_weights_sum_to_one_everywhere(n, tile, overlap, align):
    size = window_size(n, tile, overlap, align)
    starts = window_starts(n, size, overlap, align)
    assert size <= tile and starts[0] == 0 and starts[-1] + size == n
    assert all(s % align == 0 for s in starts) and size % align == 0
    total = torch.zeros(n * 4)
    for start, w in zip(starts, blend_weights(starts, size, overlap, 4), strict=True):
        total[start * 4 : (start + size) * 4] += w
    torch.testing.assert_close(total, torch.ones(n * 4))


@pytest.mark.parametrize("tile,overlap,batch", [(32, 8, 1), (32, 8, 3), (40, 12, 5), (200, 0, 1), (16, 7, 2)])
def test_a_pointwise_network_is_reproduced_exactly(tile, overlap, batch):
    x = torch.rand(1, 3, 77, 130)
    y = tiled_forward(x, nearest, 4, tile, overlap, batch)
    torch.testing.assert_close(y, nearest(x), atol=1e-6, rtol=0)


def test_feathered_overlap_leaves_no_seam_where_a_hard_paste_does(net):
    torch.manual_seed(1)
    x = F.interpolate(torch.rand(1, 3, 16, 24), size=(64, 96), mode="bicubic").clamp(0, 1)  # smooth, image-like
    with torch.inference_mode():
        whole = net(x)
        hard = tiled_forward(x, net, 4, 32, 0, 2)
        blended = tiled_forward(x, net, 4, 32, 8, 2)
        wider = tiled_forward(x, net, 4, 40, 16, 2)
    assert psnr(hard, whole) < 60  # the seams the popular tools leave
    assert psnr(blended, whole) > 75
    assert psnr(wider, whole) > psnr(blended, whole) > psnr(hard, whole)


def test_an_image_smaller_than_a_tile_is_one_whole_forward(net):
    x = torch.rand(1, 3, 20, 28)
    calls = []
    with torch.inference_mode():
        y = tiled_forward(x, lambda t: calls.append(t.shape) or net(t), 4, 64, 16)
        assert calls == [(1, 3, 20, 28)]
        torch.testing.assert_close(y, net(x))


def test_integer_output_is_clamped_and_rounded_never_wrapped():
    x = torch.tensor([[-0.5, 0.0, 0.2], [0.5, 1.0, 1.7]]).reshape(1, 1, 2, 3)
    y8 = tiled_forward(x, nearest, 4, 8, 2, out_dtype=torch.uint8)
    y16 = tiled_forward(x, nearest, 4, 8, 2, out_dtype=torch.uint16)
    assert y8[0, 0, ::4, ::4].tolist() == [[0, 0, 51], [128, 255, 255]]
    assert y16[0, 0, ::4, ::4].tolist() == [[0, 0, 13107], [32768, 65535, 65535]]


def test_finish_sees_float_rows_before_conversion():
    x = torch.rand(1, 3, 40, 50)
    y = tiled_forward(x, nearest, 4, 16, 4, out_dtype=torch.uint8, finish=lambda r: r.mean(dim=1, keepdim=True))
    assert y.shape == (1, 1, 160, 200) and y.dtype == torch.uint8
    expected = (nearest(x).mean(dim=1, keepdim=True) * 255).round().to(torch.uint8)
    assert (y.int() - expected.int()).abs().max() <= 1


def test_progress_counts_every_tile_and_cancel_stops_between_batches():
    x = torch.rand(1, 3, 64, 64)
    seen = []
    tiled_forward(x, nearest, 4, 24, 4, batch=2, progress=lambda d, t: seen.append((d, t)))
    total = seen[-1][1]
    assert total == 9 and seen == [(2, 9), (4, 9), (6, 9), (8, 9), (9, 9)]  # 3 x 3 windows

    calls = []

    def fn(t):
        calls.append(t.shape[0])
        return nearest(t)

    with pytest.raises(Cancelled):
        tiled_forward(x, fn, 4, 24, 4, batch=2, cancel=lambda: len(calls) == 3)
    assert calls == [2, 2, 2]


def test_out_of_memory_splits_the_batch_then_the_tile_and_skips_nothing(net):
    x = torch.rand(1, 3, 70, 90)
    shapes = []

    def fn(t):
        shapes.append(tuple(t.shape))
        if t.shape[0] > 1 or max(t.shape[-2:]) > 24:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return nearest(t)

    y = tiled_forward(x, fn, 4, 48, 8, batch=2)
    torch.testing.assert_close(y, nearest(x), atol=1e-6, rtol=0)
    assert shapes[0][0] == 2 and any(s[0] == 1 and max(s[-2:]) <= 24 for s in shapes)


def test_out_of_memory_on_the_smallest_tile_is_raised_not_skipped():
    def fn(t):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB")

    with pytest.raises(RuntimeError, match="not enough memory"):
        tiled_forward(torch.rand(1, 3, 40, 40), fn, 4, 32, 4)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    def fn(t):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        tiled_forward(torch.rand(1, 3, 40, 40), fn, 4, 32, 4)


@pytest.mark.parametrize("tile,overlap,batch", [(32, 16, 1), (1, 0, 1), (32, -1, 1), (32, 4, 0)])
def test_bad_settings_are_refused(tile, overlap, batch):
    with pytest.raises(ValueError):
        tiled_forward(torch.rand(1, 3, 40, 40), nearest, 4, tile, overlap, batch)
