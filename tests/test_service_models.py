"""Pairs and single models over real HTTP: registry names resolved from a real cache folder, each pair's alpha labels
and default (and ESRGAN_DEFAULT_ALPHA over them), single models without alpha, and workers that keep every model
resident across jobs."""

import shutil
from pathlib import Path

import pytest
from service_helpers import (
    api_server,
    image_size,
    png_bytes,
    redis_server,
    service_env,
    start_worker,
    submit,
    wait_job,
    wait_until,
)

from esrgan.models import engine as engine_module
from esrgan.models.architectures import SRVGGConfig
from esrgan.models.checkpoints import save_generator
from esrgan.models.registry import PAIRS
from esrgan.models.srvgg import random_state_dict
from esrgan.service import runner as runner_module
from esrgan.service.job import INPUT, JobParams
from esrgan.service.pairs import load_catalog
from esrgan.service.runner import JobRunner
from esrgan.service.settings import Settings
from esrgan.service.storage import open_storage

DETAIL = {"name": "detail", "low": "faithful", "high": "detailed"}
DENOISE = {"name": "denoise", "low": "keep noise", "high": "remove noise"}


@pytest.fixture(scope="module")
def cache(tmp: Path, realesrgan_cache: Path) -> Path:
    """The shared Real-ESRGAN cache, plus a single model of one's own in our format."""
    folder = tmp / "cache"
    shutil.copytree(realesrgan_cache, folder)
    own = random_state_dict(SRVGGConfig(num_feat=8, num_conv=2), 3)
    save_generator(folder / "own-single.safetensors", own, stage="gan", provenance="a test")
    return folder


@pytest.fixture(scope="module")
def weights(cache: Path) -> str:
    return f"esrgan-compact-x4,realesr-general-x4v3,realesr-animevideov3,mine={cache / 'own-single.safetensors'}"


@pytest.fixture(scope="module")
def env(tmp: Path, cache: Path, weights: str) -> dict[str, str]:
    """No ESRGAN_DEFAULT_ALPHA: every pair starts at its own default."""
    return service_env(tmp, weights, cache_dir=cache)


def models_by_name(client) -> dict[str, dict]:
    response = client.get("/models")
    assert response.status_code == 200, response.text
    return {m["name"]: m for m in response.json()}


def test_each_pair_says_what_its_alpha_means_and_where_it_starts(client) -> None:
    models = models_by_name(client)
    assert all(m["available"] for m in models.values()), models
    embedded = PAIRS["esrgan-compact-x4"].default_alpha
    assert models["esrgan-compact-x4"]["alpha"] == {"default": embedded, **DETAIL}
    assert models["realesr-general-x4v3"]["alpha"] == {"default": 0.5, **DENOISE}  # Real-ESRGAN's -dn default
    general = models["realesr-general-x4v3"]
    assert general["architecture"] == {
        "arch": "SRVGGNetCompact",
        "in_ch": 3,
        "out_ch": 3,
        "num_feat": 8,
        "num_conv": 2,
        "scale": 4,
    }
    assert (
        general["psnr"]["file"] == "realesr-general-wdn-x4v3.pth"
        and general["gan"]["file"] == "realesr-general-x4v3.pth"
    )
    assert "BSD-3-Clause" in general["gan"]["provenance"] and general["weights"] is None
    assert models["esrgan-compact-x4"]["architecture"]["arch"] == "RRDBNet"
    jobs = {
        name: submit(client, png_bytes(12, 10), model=name) for name in ("esrgan-compact-x4", "realesr-general-x4v3")
    }
    assert jobs["esrgan-compact-x4"]["alpha"] == embedded and jobs["realesr-general-x4v3"]["alpha"] == 0.5
    for job in jobs.values():
        assert wait_job(client, job["id"])["state"] == "finished"
    explicit = submit(client, png_bytes(12, 10), model="realesr-general-x4v3", alpha=0.9)
    assert explicit["alpha"] == 0.9


def test_single_models_have_no_alpha_and_refuse_one(client) -> None:
    models = models_by_name(client)
    for name, file in (("realesr-animevideov3", "realesr-animevideov3.pth"), ("mine", "own-single.safetensors")):
        single = models[name]
        assert single["alpha"] is None and single["psnr"] is None and single["gan"] is None, single
        assert single["weights"]["file"] == file and single["scale"] == 4
    assert "anime video" in models["realesr-animevideov3"]["description"]
    assert models["mine"]["weights"]["provenance"] == "a test"
    refused = client.post(
        "/upscale", params={"model": "mine", "alpha": "0.5"}, files={"file": ("a.png", png_bytes(8, 8), "image/png")}
    )
    assert refused.status_code == 422
    assert "'mine' is a single network, not a PSNR/GAN pair: it takes no alpha" in refused.json()["detail"]
    for name in ("realesr-animevideov3", "mine"):
        job = submit(client, png_bytes(14, 9, seed=4), model=name)
        assert job["alpha"] is None
        done = wait_job(client, job["id"])
        assert done["state"] == "finished" and done["alpha"] is None, done
        assert image_size(client.get(done["result_url"]).content) == (56, 36)


def test_the_server_wide_default_alpha_overrides_every_pairs(tmp: Path, cache: Path, weights: str) -> None:
    env = service_env(tmp / "override", weights, cache_dir=cache, default_alpha=0.3)
    with api_server(env, tmp / "override.log") as client:
        models = models_by_name(client)
        assert models["esrgan-compact-x4"]["alpha"] == {"default": 0.3, **DETAIL}
        assert models["realesr-general-x4v3"]["alpha"] == {"default": 0.3, **DENOISE}
        assert models["mine"]["alpha"] is None
        assert submit(client, png_bytes(8, 8), model="realesr-general-x4v3")["alpha"] == 0.3


def test_a_worker_loads_each_model_once_and_keeps_it(tmp: Path, cache: Path, weights: str, monkeypatch) -> None:
    """Jobs alternating between a pair and single models, at changing alphas: every model was built once, at start."""
    built = []
    for kind in ("from_pair", "from_weights"):
        real = getattr(engine_module.Engine, kind)
        monkeypatch.setattr(
            runner_module.Engine,
            kind,
            classmethod(lambda cls, *a, _real=real, **k: built.append(a[0].name) or _real(*a, **k)),
        )
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(cache))
    settings = Settings(weights=weights.split(","), storage_dir=tmp / "resident", device="cpu")
    storage = open_storage(settings)
    runner = JobRunner.load(settings, storage)
    assert sorted(built) == sorted(
        [
            "esrgan_compact_x4_psnr.safetensors",
            "realesr-general-wdn-x4v3.pth",
            "realesr-animevideov3.pth",
            "own-single.safetensors",
        ]
    )
    engines = dict(runner.engines.engines)
    jobs = [("realesr-general-x4v3", 0.2), ("mine", None), ("esrgan-compact-x4", 0.7), ("realesr-general-x4v3", 0.8)]
    jobs += [("realesr-animevideov3", None), ("mine", None)]
    for i, (model, alpha) in enumerate(jobs):
        job_id = f"{i:032x}"
        storage.put(job_id, INPUT, png_bytes(10, 8, seed=i))
        params = JobParams(model=model, alpha=alpha, format="png")
        assert runner.run(job_id, params, progress=lambda done, total: None, cancel=lambda: False)
        assert image_size(storage.read(job_id, "result.png")) == (40, 32)
    assert len(built) == 4 and runner.engines.engines == engines  # the same four engine objects, none rebuilt
    assert runner.engines.get("realesr-general-x4v3").alpha == 0.8 and runner.engines.get("mine").alpha is None


def test_single_models_and_pair_defaults_through_redis_workers(tmp: Path, cache: Path, weights: str) -> None:
    """The same models with RQ: the API (which loads no torch) describes them, an `esrgan worker` runs a single model's
    job without alpha and a pair's at the pair's default."""
    (tmp / "rq").mkdir()
    with redis_server(tmp / "rq") as url:
        env = service_env(tmp / "rq", weights, cache_dir=cache, redis_url=url)
        worker = start_worker(env, tmp / "rq" / "worker.log")
        try:
            with api_server(env, tmp / "rq" / "api.log", ready=False) as client:
                assert models_by_name(client)["realesr-animevideov3"]["alpha"] is None
                wait_until(lambda: client.get("/readyz").status_code == 200, 120, "the worker to register")
                single = wait_job(client, submit(client, png_bytes(9, 7), model="realesr-animevideov3")["id"])
                pair = wait_job(client, submit(client, png_bytes(9, 7), model="realesr-general-x4v3")["id"])
                assert single["state"] == pair["state"] == "finished", (single, pair, worker.output())
                assert single["alpha"] is None and pair["alpha"] == 0.5
                assert image_size(client.get(single["result_url"]).content) == (36, 28)
        finally:
            worker.stop()


def test_a_pair_of_two_different_networks_is_listed_unavailable(tmp: Path, cache: Path, write_pair) -> None:
    """Two files that cannot be blended (an RRDBNet and an SRVGGNetCompact) are refused where they are configured,
    with the reason; the other models still serve."""
    (tmp / "mixed").mkdir()
    rrdb, _ = write_pair(tmp / "mixed")
    weights = [f"mixed={rrdb}+{cache / 'own-single.safetensors'}", f"mine={cache / 'own-single.safetensors'}"]
    catalog = load_catalog(Settings(weights=weights, storage_dir=tmp / "mixed-jobs"))
    assert not catalog["mixed"].available and "its two files are different networks" in catalog["mixed"].error
    assert "RRDBConfig" in catalog["mixed"].error and "SRVGGConfig" in catalog["mixed"].error
    assert catalog["mine"].available
