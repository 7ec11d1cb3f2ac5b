"""Fixtures and builders shared by the test files, one section per kind; each exists here once.

Builders the product offers itself are imported from it, not copied: random weights are
`esrgan.models.rrdbnet.random_state_dict` and `esrgan.models.srvgg.random_state_dict`. Builders only one room's tests
need stay in that room's helpers module.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch
from service_helpers import api_server, redis_server

from esrgan.models import rrdbnet, srvgg
from esrgan.models.architectures import ArchConfig, RRDBConfig, SRVGGConfig
from esrgan.models.checkpoints import StateDict, save_generator

# --- networks: a tiny random PSNR/GAN pair on disk -----------------------------------------------------------------

TINY = RRDBConfig(nf=8, nb=1, gc=4)


def random_weights(config: ArchConfig, seed: int = 0) -> StateDict:
    """Random weights of either architecture whose output depends visibly on the input: PyTorch's default init for
    RRDBNet, SRVGGNetCompact's own random layout for it."""
    if isinstance(config, SRVGGConfig):
        return srvgg.random_state_dict(config, seed)
    return rrdbnet.random_state_dict(config, seed, init="default")


def random_pair_weights(config: ArchConfig) -> tuple[StateDict, StateDict]:
    """A PSNR/GAN pair of either architecture: the GAN half a perturbed copy, as fine-tuning would leave it."""
    psnr = random_weights(config)
    noise = torch.Generator().manual_seed(1)
    return psnr, {k: v + 0.05 * torch.randn(v.shape, generator=noise) for k, v in psnr.items()}


def write_random_pair(folder: Path, config: ArchConfig = TINY) -> tuple[Path, Path]:
    """Write `random_pair_weights` of `config` in our format and return the two paths."""
    psnr, gan = random_pair_weights(config)
    paths = folder / "tiny_psnr.safetensors", folder / "tiny_gan.safetensors"
    save_generator(paths[0], psnr, stage="psnr", provenance="test")
    save_generator(paths[1], gan, stage="gan", provenance="test")
    return paths


@pytest.fixture(scope="session")
def random_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny pair of `TINY`, written once for the session (tests only read it)."""
    return write_random_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture
def write_pair() -> Callable[..., tuple[Path, Path]]:
    """`write_random_pair`, for a test that needs a pair of another architecture in its own folder."""
    return write_random_pair


REALESRGAN_COMPACT = SRVGGConfig(num_feat=8, num_conv=2)  # the released files' layout, a fraction of their size


@pytest.fixture(scope="session")
def realesrgan_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights cache (ESRGAN_CACHE_DIR) as `esrgan weights download` leaves it for the registry's general pair and
    realesr-animevideov3: Real-ESRGAN's file names, `params`-wrapped .pth files of random SRVGGNetCompacts
    (`REALESRGAN_COMPACT`), the general model's -wdn twin a perturbed copy of it, as a fine-tuned twin is."""
    folder = tmp_path_factory.mktemp("cache")
    twin, general = random_pair_weights(REALESRGAN_COMPACT)
    torch.save({"params": general}, folder / "realesr-general-x4v3.pth")
    torch.save({"params": twin}, folder / "realesr-general-wdn-x4v3.pth")
    torch.save({"params": random_weights(REALESRGAN_COMPACT, 2)}, folder / "realesr-animevideov3.pth")
    return folder


# --- service: `esrgan serve` for a test module ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's own folder (weights, storage, process logs), shared by its tests as its server is."""
    return tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))


@pytest.fixture(scope="module")
def redis_url(tmp: Path) -> Iterator[str]:
    """A redis-server of the module's own on a free port, for a module whose server and workers queue on Redis."""
    with redis_server(tmp) as url:
        yield url


@pytest.fixture(scope="module")
def client(tmp: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """`esrgan serve` for the whole module, a real process over real HTTP, configured by the module's `env` fixture
    (ESRGAN_* variables). In-process mode is awaited until /readyz answers; Redis mode only until the API answers,
    since readiness needs a worker, which the module starts when its tests want one."""
    with api_server(env, tmp / "serve.log", ready="ESRGAN_REDIS_URL" not in env) as client:
        yield client
