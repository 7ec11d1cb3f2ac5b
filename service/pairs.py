"""The models this server offers (`ESRGAN_WEIGHTS`): where their files are, their scale, provenance and alpha.

Read once when the API starts, from each file's header and shapes (a .pth file has none and is read whole), so
`GET /models` and request validation never touch the weights again. A safetensors header is read without torch
(`models.layouts`), so an API whose workers run elsewhere does not load torch for its catalog. A model whose files
cannot be read is listed as unavailable with the reason, and requests for it are refused (422).

A pair blends two networks by alpha and says what its alpha means (the labels of its two ends) and where it starts:
`ESRGAN_DEFAULT_ALPHA` when set, else the pair's own default from the registry (the paper's 0.8 for a pair of one's
own files). A single model takes no alpha: its `alpha` is null.
"""

import logging
from pathlib import Path

from pydantic import BaseModel, Field

from esrgan.models.architectures import describe as describe_architecture
from esrgan.models.layouts import CheckpointError, WeightsInfo, describe_weights
from esrgan.models.registry import DETAIL, PAIRS, PAPER_ALPHA, SINGLES, FileSpec, resolve_model
from esrgan.service.settings import Settings, WeightsEntry

log = logging.getLogger(__name__)


class ModelFile(BaseModel):
    file: str
    layout: str
    stage: str | None = None
    provenance: str | None = None


class ModelAlpha(BaseModel):
    """What a pair's alpha means to a person, and where it starts."""

    default: float = Field(description="Where alpha starts: the server's ESRGAN_DEFAULT_ALPHA, else the pair's own")
    name: str = Field(description="What alpha sets, e.g. detail or denoise")
    low: str = Field(description="What alpha 0 gives, e.g. faithful or keep noise")
    high: str = Field(description="What alpha 1 gives, e.g. detailed or remove noise")


class ModelInfo(BaseModel):
    name: str
    default: bool
    available: bool
    scale: int | None = None
    architecture: dict[str, int | str] | None = None  # arch (RRDBNet, SRVGGNetCompact) and its hyper-parameters
    alpha: ModelAlpha | None = Field(None, description="A pair's alpha; null for a single model, which takes none")
    psnr: ModelFile | None = None  # a pair's alpha-0 network
    gan: ModelFile | None = None  # a pair's alpha-1 network
    weights: ModelFile | None = None  # a single model's network
    description: str | None = None  # from the registry, for registry names
    error: str | None = None  # why an unavailable model cannot be used


def model_paths(entry: WeightsEntry) -> tuple[Path, Path | None]:
    """(PSNR, GAN) files of a configured pair, or (weights, None) of a single model; a registry name is resolved,
    never downloaded here."""
    if entry.weights is not None:
        return entry.weights, None
    if entry.psnr is not None and entry.gan is not None:
        return entry.psnr, entry.gan
    return resolve_model(entry.name)


def registry_facts(name: str) -> tuple[str | None, dict[str, FileSpec]]:
    """Description and file specs by role of a registry name (None and nothing if it is none)."""
    if name in PAIRS:
        return PAIRS[name].note, {"psnr": PAIRS[name].psnr, "gan": PAIRS[name].gan}
    if name in SINGLES:
        return SINGLES[name].note, {"weights": SINGLES[name].weights}
    return None, {}


def model_file(path: Path, weights: WeightsInfo, spec: FileSpec | None) -> ModelFile:
    provenance = weights.metadata.get("provenance") or (spec.provenance if spec else None)
    return ModelFile(
        file=path.name, layout=str(weights.layout), stage=weights.metadata.get("stage"), provenance=provenance
    )


def pair_alpha(name: str, registered: bool, server_alpha: float | None) -> ModelAlpha:
    """A pair's alpha: the registry's labels and default, or the ESRGAN labels and the paper's 0.8 for one's own."""
    pair = PAIRS.get(name) if registered else None
    scale = pair.alpha if pair else DETAIL
    start = pair.default_alpha if pair else PAPER_ALPHA
    return ModelAlpha(default=start if server_alpha is None else server_alpha, **vars(scale))


def describe(entry: WeightsEntry, default: bool, server_alpha: float | None) -> ModelInfo:
    registered = entry.psnr is None and entry.weights is None
    description, specs = registry_facts(entry.name) if registered else (None, {})
    try:
        first, second = model_paths(entry)
        roles = {"psnr": first, "gan": second} if second is not None else {"weights": first}
        described = {role: describe_weights(path) for role, path in roles.items()}
        configs = {info.config for info in described.values()}
        if len(configs) > 1:  # the workers could not blend them: refuse the pair here, where it is configured
            raise CheckpointError(f"its two files are different networks: {' and '.join(map(str, configs))}")
        files = {role: model_file(roles[role], info, specs.get(role)) for role, info in described.items()}
    except Exception as exc:  # a broken or missing model is reported, not fatal: the others still serve
        log.warning("model %s is unavailable: %s", entry.name, exc)
        return ModelInfo(name=entry.name, default=default, available=False, description=description, error=str(exc))
    config = configs.pop()
    return ModelInfo(
        name=entry.name,
        default=default,
        available=True,
        scale=config.scale,
        architecture=describe_architecture(config),
        alpha=None if second is None else pair_alpha(entry.name, registered, server_alpha),
        description=description,
        **files,
    )


def load_catalog(settings: Settings) -> dict[str, ModelInfo]:
    entries = settings.weight_entries
    return {entry.name: describe(entry, i == 0, settings.default_alpha) for i, entry in enumerate(entries)}
