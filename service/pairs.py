"""The model pairs this server offers (`ESRGAN_WEIGHTS`): where their files are, their scale and provenance.

Read once when the API starts, from each file's header and shapes (a .pth file has none and is read whole), so
`GET /models` and request validation never touch the weights again. A pair whose files cannot be read is listed as
unavailable with the reason, and requests for it are refused (422).
"""

import logging
from pathlib import Path

from pydantic import BaseModel

from esrgan.models.registry import PAIRS, resolve_pair
from esrgan.service.settings import Settings, WeightsEntry

log = logging.getLogger(__name__)


class ModelFile(BaseModel):
    file: str
    layout: str
    stage: str | None = None
    provenance: str | None = None


class ModelInfo(BaseModel):
    name: str
    default: bool
    available: bool
    scale: int | None = None
    architecture: dict[str, int] | None = None  # RRDBNet in_ch, out_ch, nf, nb, gc, scale
    psnr: ModelFile | None = None
    gan: ModelFile | None = None
    description: str | None = None  # from the registry, for registry names
    error: str | None = None  # why an unavailable pair cannot be used


def pair_paths(entry: WeightsEntry) -> tuple[Path, Path]:
    """Local PSNR and GAN files of a configured pair (a registry name is resolved, never downloaded here)."""
    if entry.psnr is not None and entry.gan is not None:
        return entry.psnr, entry.gan
    return resolve_pair(entry.name)


def describe(entry: WeightsEntry, default: bool) -> ModelInfo:
    description, registry_provenance = None, {}
    if entry.psnr is None:
        spec = PAIRS.get(entry.name)
        if spec is not None:
            description = spec.note
            registry_provenance = {"psnr": spec.psnr.provenance, "gan": spec.gan.provenance}
    # Imported here, not at the top: the checkpoint module brings torch, and an API whose workers run elsewhere loads
    # it only to describe its pairs (from a safetensors header; a .pth file is read whole).
    from esrgan.models.checkpoints import describe_weights

    try:
        files = {}
        for stage, path in zip(("psnr", "gan"), pair_paths(entry), strict=True):
            weights = describe_weights(path)
            files[stage] = ModelFile(
                file=path.name,
                layout=str(weights.layout),
                stage=weights.metadata.get("stage"),
                provenance=weights.metadata.get("provenance") or registry_provenance.get(stage),
            )
            config = weights.config
    except Exception as exc:  # a broken or missing pair is reported, not fatal: the others still serve
        log.warning("model pair %s is unavailable: %s", entry.name, exc)
        return ModelInfo(name=entry.name, default=default, available=False, description=description, error=str(exc))
    return ModelInfo(
        name=entry.name,
        default=default,
        available=True,
        scale=config.scale,
        architecture=dict(config.__dict__),
        description=description,
        **files,
    )


def load_catalog(settings: Settings) -> dict[str, ModelInfo]:
    entries = settings.weight_entries
    return {entry.name: describe(entry, default=i == 0) for i, entry in enumerate(entries)}
