"""The training loop on tiny configs and real files: it learns, both stages run, resume is exact, exports load back."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import write_photos
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.models.checkpoints import load_generator, read_metadata
from esrgan.training.checkpoint import load_run
from esrgan.training.config import ConfigError, load_config
from esrgan.training.data import prepare
from esrgan.training.export import export_run
from esrgan.training.grow import deepened
from esrgan.training.train import lr_at, ragan_d_loss, ragan_g_loss, set_threads, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    photos = write_photos(root / "hr", textured=2, size=(160, 160))
    prepare(photos, root / "sub", scale=4, crop=128, step=32, fmt="npy", progress=False)
    one = write_photos(root / "one_hr", textured=1, size=(32, 32), seed=5, noise=0.0)
    prepare(one, root / "one", scale=4, crop=32, step=32, progress=False)
    val = write_photos(root / "val", textured=2, size=(48, 40), seed=9)
    val_niqe = write_photos(root / "val_niqe", textured=1, size=(200, 104), seed=11)  # two 96 px blocks for NIQE
    return {"sub": root / "sub", "one": root / "one", "val": val, "val_niqe": val_niqe}


def read_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv") as f:
        return list(csv.DictReader(f))


# One 32 px sub-image, no flips: every batch is the same batch.
ONE_BATCH = ["data.flip=false", "data.rotate=false", "train.log_every=1", "train.val_every=1000",
             "train.ckpt_every=1000", "data.batch=2"]  # fmt: skip


def one_batch(data: dict[str, Path], iters: int, *extra: str) -> list[str]:
    return [f"data.train_dir={data['one']}", *ONE_BATCH, f"train.iters={iters}", *extra]


@pytest.fixture(scope="module")
def fp32_l1_log(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """l_pix of 80 fp32 L1 steps on the one batch: what bf16 autocast and the L2 criterion are compared with."""
    run = tmp_path_factory.mktemp("fp32_l1") / "run"
    train(load_config("tiny_psnr", one_batch(data, 80)), run, progress=False)
    return [float(r["l_pix"]) for r in read_log(run)]


def test_stage1_overfits_one_batch(data: dict[str, Path], tmp_path: Path) -> None:
    train(load_config("tiny_psnr", one_batch(data, 200)), tmp_path / "run", progress=False)
    losses = [float(r["l_pix"]) for r in read_log(tmp_path / "run")]
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_cpu_bf16_autocast_learns_and_keeps_fp32_weights(
    data: dict[str, Path], fp32_l1_log: list[float], tmp_path: Path
) -> None:
    mixed = train(load_config("tiny_psnr", one_batch(data, 80, "train.amp_cpu=true")), tmp_path, progress=False)
    fp32 = fp32_l1_log
    bf16 = [float(r["l_pix"]) for r in read_log(tmp_path)]
    # Same initial weights and batch: the first losses agree up to bf16 rounding, but not exactly (autocast ran).
    assert bf16[0] != fp32[0] and bf16[0] == pytest.approx(fp32[0], rel=0.05)
    assert bf16[-1] < bf16[0] / 4, (bf16[0], bf16[-1])
    assert {t.dtype for t in mixed["g"].values()} == {torch.float32}


def test_l2_pixel_criterion_trains_on_the_squared_error(
    data: dict[str, Path], fp32_l1_log: list[float], tmp_path: Path
) -> None:
    train(load_config("tiny_psnr", one_batch(data, 80, "loss.pixel_criterion=l2")), tmp_path, progress=False)
    l1, l2 = fp32_l1_log, [float(r["l_pix"]) for r in read_log(tmp_path)]
    # The same weights and batch at step 1: the mean squared error lies between the squared mean error and the mean
    # error (errors under 1), strictly, as the errors differ.
    assert l1[0] ** 2 < l2[0] < l1[0], (l1[0], l2[0])
    assert l2[-1] < l2[0] / 10, (l2[0], l2[-1])


def extra_of(path: Path) -> dict:
    return json.loads(read_metadata(path)["extra"])


def test_stage2_losses_are_finite_and_move(data: dict[str, Path], tmp_path: Path) -> None:
    psnr_run = tmp_path / "psnr"
    train(load_config("tiny_psnr", [f"data.train_dir={data['sub']}", "train.iters=2"]), psnr_run, progress=False)
    cfg = load_config(
        "tiny_gan",
        [f"data.train_dir={data['sub']}", f"train.init_g={psnr_run}", "train.iters=4",
         f"data.val_dir={data['val_niqe']}", "train.val_every=2", "train.ema_decay=0.5", "train.snapshot_every=2"],
    )  # fmt: skip
    final = train(cfg, tmp_path / "gan", progress=False)
    rows = read_log(tmp_path / "gan")
    for key in ("l_pix", "l_gan", "l_g", "l_d", "d_real", "d_fake"):
        values = [float(r[key]) for r in rows]
        assert all(np.isfinite(values)), key
        assert len(set(values)) > 1, key
    assert float(rows[0]["l_g"]) == pytest.approx(1e-2 * float(rows[0]["l_pix"]) + 5e-3 * float(rows[0]["l_gan"]))
    # G started from G_PSNR, and the exports carry their training record.
    assert final["step"] == 4 and 0 < final["val"]["psnr_y"] < 60 and "psnr_y_ema" in final["val"]
    assert final["val"]["niqe"] > 0 and final["val"]["niqe_ema"] > 0  # stage 2 is validated on NIQE too
    with open(tmp_path / "gan" / "val.csv") as f:
        assert [float(r["niqe"]) > 0 for r in csv.DictReader(f)] == [True, True]
    snapshots = sorted(p.name for p in (tmp_path / "gan").glob("g_gan_0*.safetensors"))
    assert snapshots == [f"g_gan_{n:07d}{ema}.safetensors" for n in (2, 4) for ema in ("", "_ema")]
    assert extra_of(tmp_path / "gan" / snapshots[0])["iterations"] == 2
    for name in ("g_gan.safetensors", "g_gan_ema.safetensors"):
        g = load_generator(tmp_path / "gan" / name)
        assert g.config.nf == 8 and g.config.nb == 1
        extra = extra_of(tmp_path / "gan" / name)
        assert read_metadata(tmp_path / "gan" / name)["stage"] == "gan" and extra["iterations"] == 4
        assert extra["config"]["train"]["stage"] == "gan"
        assert extra["data"]["sub_images"] > 0 and extra["validation"]["step"] == 4


def test_resume_continues_exactly(data: dict[str, Path], tmp_path: Path) -> None:
    base = [f"data.train_dir={data['sub']}", "train.log_every=1", "train.ckpt_every=3", "data.workers=1"]
    cfg6 = load_config("tiny_gan", [*base, "train.iters=6", f"train.init_g={write_generator(tmp_path)}"])
    cfg3 = load_config("tiny_gan", [*base, "train.iters=3", f"train.init_g={write_generator(tmp_path)}"])
    straight = train(cfg6, tmp_path / "straight", progress=False)
    train(cfg3, tmp_path / "split", progress=False)
    resumed = train(cfg6, tmp_path / "split", resume=True, progress=False)
    full, split = read_log(tmp_path / "straight"), read_log(tmp_path / "split")
    keys = ("step", "lr_g", "l_pix", "l_gan", "l_g", "l_d")
    assert [[r[k] for k in keys] for r in full] == [[r[k] for k in keys] for r in split]
    for name, tensor in straight["g"].items():
        assert torch.equal(tensor, resumed["g"][name]), name
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg6, tmp_path / "split", progress=False)  # a finished run is not silently overwritten


def test_resume_builds_the_checkpoints_networks_whatever_the_config_says(
    data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = [f"data.train_dir={data['sub']}", "train.log_every=1", "train.ckpt_every=2"]
    straight = train(load_config("tiny_psnr", [*base, "train.iters=4"]), tmp_path / "straight", progress=False)
    train(load_config("tiny_psnr", [*base, "train.iters=2"]), tmp_path / "split", progress=False)
    wider = load_config("tiny_psnr", [*base, "train.iters=4", "model.nf=16", "model.nb=2"])
    with caplog.at_level("WARNING"):
        resumed = train(wider, tmp_path / "split", resume=True, progress=False)
    assert "continues its own networks" in caplog.text
    assert resumed["config"]["model"] == straight["config"]["model"] and resumed["config"]["model"]["nf"] == 8
    for name, tensor in straight["g"].items():  # the nf 8 network, continued exactly
        assert torch.equal(tensor, resumed["g"][name]), name
    assert load_generator(tmp_path / "split" / "g_psnr.safetensors").config.nf == 8
    gan = load_config("tiny_gan", [*base, "train.iters=4", f"train.init_g={write_generator(tmp_path)}"])
    with pytest.raises(ConfigError, match=r"--resume: .*is a stage psnr run; the config asks for stage gan"):
        train(gan, tmp_path / "split", resume=True, progress=False)


def test_stage1_grows_a_deeper_trunk_from_a_shallower_generator(data: dict[str, Path], tmp_path: Path) -> None:
    shallow = load_generator(write_generator(tmp_path)).eval()
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        before = shallow(x)
        after = deepened(shallow, 3).eval()(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)  # the same function, with 2 more RRDBs
    assert before.abs().max() > 0.01  # weights that compute something, so a wrong rescale would show

    base = [f"data.train_dir={data['sub']}", "train.iters=3", "train.log_every=1", "train.val_every=1000",
            f"train.init_g={write_generator(tmp_path)}"]  # fmt: skip
    train(load_config("tiny_psnr", base), tmp_path / "nb1", progress=False)
    grown = train(load_config("tiny_psnr", [*base, "model.nb=3"]), tmp_path / "nb3", progress=False)
    first = [float(read_log(tmp_path / run)[0]["l_pix"]) for run in ("nb1", "nb3")]
    assert first[1] == pytest.approx(first[0], rel=1e-5)  # same batch, same function: the same first loss
    assert grown["config"]["model"]["nb"] == 3 and grown["g"]["body.2.rdb3.conv5.weight"].abs().max() > 0  # learning

    with pytest.raises(ConfigError, match=r"train\.init_g: .*holds .*nf=8.*asks for .*nf=16"):
        train(load_config("tiny_psnr", [*base, "model.nf=16"]), tmp_path / "wide", progress=False)
    gan = load_config("tiny_gan", [*base, "model.nb=3"])
    with pytest.raises(ConfigError, match=r"stage psnr can start a deeper trunk"):  # a pair must interpolate
        train(gan, tmp_path / "gan", progress=False)


def test_a_checkpoint_that_asks_for_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(marker),))

    (tmp_path / "run").mkdir()
    torch.save({"step": 1, "g": {}, "hook": Exploit()}, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(ConfigError, match=r"checkpoint\.pt: refused to unpickle it: it asks for code"):
        load_run(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"refused to unpickle it"):
        export_run(tmp_path / "run", tmp_path / "g.safetensors")
    assert not marker.exists()


def write_generator(tmp_path: Path) -> Path:
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.rrdbnet import RRDBConfig, RRDBNet

    path = tmp_path / "g_init.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        save_generator(path, RRDBNet(RRDBConfig(nf=8, nb=1, gc=4)).state_dict(), stage="psnr", provenance="test")
    return path


def test_export_command_writes_loadable_safetensors_and_onnx(data: dict[str, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    cfg = load_config("tiny_psnr", [f"data.train_dir={data['sub']}", "train.iters=2", "train.ema_decay=0.9"])
    train(cfg, tmp_path / "run", progress=False)
    written = export_run(tmp_path / "run", tmp_path / "out" / "g.safetensors", ema=True, onnx=True)
    assert [p.name for p in written] == ["g.safetensors", "g.onnx"]
    g = load_generator(written[0])
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        expected = g(x).numpy()
    session = ort.InferenceSession(str(written[1]), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == (1, 3, 48, 40) and np.abs(got - expected).max() < 1e-4
    assert extra_of(written[0])["ema"] is True


@pytest.mark.parametrize(("to", "sig"), [("main", signal.SIGTERM), ("group", signal.SIGTERM), ("group", signal.SIGINT)])
def test_sigterm_saves_a_checkpoint_and_resume_finishes(
    data: dict[str, Path], tmp_path: Path, to: str, sig: signal.Signals
) -> None:
    """`group`: systemd's way, `kill -- -PGID` and Ctrl-C in a terminal: the data worker gets the signal too and must
    not die of it."""
    run = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "esrgan"), "train", "tiny_psnr", "--run-dir", str(run), "--no-progress",
           "-s", f"data.train_dir={data['sub']}", "-s", "train.ckpt_every=100000", "-s", "data.workers=1",
           "--iters", "100000"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not (run / "log.csv").exists() or len(read_log(run)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    if to == "group":
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "--resume" in out
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # plain tensors and values: no code to unpickle
    assert 2 <= state["step"] < 100000
    assert not (run / "g_psnr.safetensors").exists()  # not finished, so no final export
    resumed = subprocess.run(
        [*cmd[:-1], str(state["step"] + 2), "--resume"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert load_generator(run / "g_psnr.safetensors").config.nf == 8


def test_relativistic_losses_match_their_formulas() -> None:
    real, fake = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.5], [-1.0]], requires_grad=True)
    sig = torch.sigmoid
    d_ref = -(torch.log(sig(real - fake.mean())).mean() + torch.log(1 - sig(fake - real.mean())).mean()) / 2
    g_ref = -(torch.log(1 - sig(real - fake.mean())).mean() + torch.log(sig(fake - real.mean())).mean()) / 2
    assert torch.allclose(ragan_d_loss(real, fake), d_ref) and torch.allclose(ragan_g_loss(real, fake), g_ref)
    # G's loss reaches the fake logits through both terms (the real term via E[C(x_f)]).
    (grad,) = torch.autograd.grad(ragan_g_loss(real, fake), fake)
    (grad_fake_term_only,) = torch.autograd.grad(-torch.log(sig(fake - real.mean())).mean() / 2, fake)
    assert not torch.allclose(grad, grad_fake_term_only)


def test_schedules_follow_the_papers() -> None:
    paper = load_config("esrgan_psnr_x4").optim_g
    assert [lr_at(s, paper) for s in (0, 199_999, 200_000, 400_000, 999_999)] == [2e-4, 2e-4, 1e-4, 5e-5, 1.25e-5]
    gan = load_config("esrgan_gan_x4", ["train.init_g=x"])
    assert [lr_at(s, gan.optim_d) for s in (0, 50_000, 100_000, 200_000, 300_000)] == [1e-4, 5e-5, 2.5e-5, 1.25e-5,
                                                                                       6.25e-6]  # fmt: skip
    assert gan.loss.perceptual == 1 and gan.loss.gan == 5e-3 and gan.loss.pixel == 1e-2
    cosine = load_config("basicsr_psnr_x4").optim_g
    assert lr_at(0, cosine) == 2e-4 and lr_at(250_000, cosine) == 2e-4
    assert lr_at(125_000, cosine) == pytest.approx((2e-4 + 1e-7) / 2) and cosine.betas == [0.9, 0.99]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_config("tiny_psnr", ["train.iterations=5"])
    with pytest.raises(ConfigError, match=r"data\.batch: expected an integer"):
        load_config("tiny_psnr", ["data.batch=many"])
    with pytest.raises(ConfigError, match="init_g"):
        load_config("tiny_gan")
    with pytest.raises(ConfigError, match="pixel_criterion must be 'l1' or 'l2', not 'mse'"):
        load_config("tiny_psnr", ["loss.pixel_criterion=mse"])
    with pytest.raises(ConfigError, match="pixel loss only"):
        load_config("tiny_psnr", ["loss.gan=0.005"])
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"model: RRDBNet supports scale 1, 2 or 4, not 3"):
        load_config("tiny_psnr", ["model.scale=3"])  # RRDBConfig's own check, named by section
    with pytest.raises(ConfigError, match=r"model\.in_ch and model\.out_ch must be 3"):
        load_config("tiny_psnr", ["model.in_ch=1"])


def test_missing_vgg_weights_stop_the_run_with_directions(data: dict[str, Path], tmp_path: Path) -> None:
    cfg = load_config(
        "tiny_gan",
        [f"data.train_dir={data['sub']}", f"train.init_g={write_generator(tmp_path)}", "loss.perceptual=1",
         f"loss.vgg_weights={tmp_path / 'vgg19.pth'}"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"loss.perceptual=0") as exc:
        train(cfg, tmp_path / "run", progress=False)
    assert str(tmp_path / "vgg19.pth") in str(exc.value)
    # the command line turns it into its message and a usage-error exit status, without a traceback
    args = ["train", "tiny_gan", "--run-dir", str(tmp_path / "cli"), "--no-progress", "-s", "loss.perceptual=1"]
    args += ["-s", f"data.train_dir={data['sub']}", "-s", f"train.init_g={write_generator(tmp_path)}"]
    result = CliRunner().invoke(app, [*args, "-s", f"loss.vgg_weights={tmp_path / 'vgg19.pth'}"])
    assert result.exit_code == 2 and "loss.perceptual=0" in result.output
    assert "Traceback" not in result.output


def test_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv("ESRGAN_THREADS", "1")
    try:
        set_threads(0)
        assert torch.get_num_threads() == 1
        set_threads(3)  # the config's value wins over the environment
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
