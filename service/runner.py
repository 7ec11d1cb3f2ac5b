"""The work of one job, the same for both queues: read the upload, blend the pair for alpha, upscale, store the result.

A `JobRunner` belongs to one worker (an `esrgan worker` process, or one in-process thread of `LocalJobs`) and holds
what every job needs: the settings, the shared storage and that worker's own engines. A worker loads each model pair
once and keeps it resident; a job only blends the two networks for its alpha (a no-op when alpha repeats) and runs the
tiled engine. This module brings torch: import it where workers start, never in the API's request path.
"""

import logging
from dataclasses import dataclass

import torch

from esrgan.models.engine import Cancelled, Engine, EngineSettings
from esrgan.models.images import read_image, write_image
from esrgan.models.resize import resize
from esrgan.service.job import INPUT, CancelCheck, JobParams, ProgressReport, result_name
from esrgan.service.pairs import model_paths
from esrgan.service.settings import Settings
from esrgan.service.storage import Storage, StorageError, put_with_retries

log = logging.getLogger(__name__)


def set_threads(settings: Settings) -> None:
    """Set torch's thread count for this process, once, where its workers start (in-process threads all share it)."""
    torch.set_num_threads(settings.torch_threads)


class EngineCache:
    """The engines of one worker, loaded on first use and kept.

    Not shared between threads: each engine holds one blend of weights, set per job.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.entries = {entry.name: entry for entry in settings.weight_entries}
        self.engines: dict[str, Engine] = {}

    def get(self, model: str) -> Engine:
        if model not in self.engines:
            first, gan = model_paths(self.entries[model])
            settings = EngineSettings(
                device=self.settings.device, tile=self.settings.tile, precision=self.settings.precision
            )
            engine = Engine.from_weights(first, settings) if gan is None else Engine.from_pair(first, gan, settings)
            self.engines[model] = engine
            files = first.name if gan is None else f"{first.name} + {gan.name}"
            log.info("loaded model %s (%s) on %s in %s", model, files, engine.device, engine.precision)
        return self.engines[model]

    def preload(self) -> None:
        for name in self.entries:
            self.get(name)


@dataclass(frozen=True)
class JobRunner:
    """What one worker hands every job it runs."""

    settings: Settings
    storage: Storage
    engines: EngineCache

    @classmethod
    def load(cls, settings: Settings, storage: Storage) -> "JobRunner":
        """A runner with every configured pair loaded: a worker counts as alive only once it has its weights.

        Whatever loading raises (a missing or broken file) propagates: a worker that cannot load must not start.
        """
        engines = EngineCache(settings)
        engines.preload()
        return cls(settings, storage, engines)

    def run(self, job_id: str, params: JobParams, *, progress: ProgressReport, cancel: CancelCheck) -> bool:
        """Upscale the stored upload of `job_id` and store its result.

        Returns:
            True when the result is stored, False when `cancel()` stopped the job (nothing is stored then). The
            last check comes after the forward and the encoding, just before the result is stored; the queue treats
            a cancel that arrives after it as a cancel too (a cancelled job never ends finished).
        """
        if cancel():
            return False
        try:
            upload = self.storage.read(job_id, INPUT)
        except FileNotFoundError:
            raise StorageError("this job's upload is no longer in the storage (removed, or expired)") from None
        picture = read_image(upload, max_pixels=self.settings.max_pixels)
        engine = self.engines.get(params.model)
        if params.alpha is not None:  # a pair: blend for this job (free when it repeats); a single model has none
            engine.set_alpha(params.alpha)
        try:
            result = engine.upscale(picture, progress=progress, cancel=cancel, tile=params.tile)
        except Cancelled:
            return False
        if params.size is not None:
            result = resize(result, *params.size)  # rebinding frees the full-size result before encoding
        encoded = write_image(result, params.format)
        if cancel():  # cancelled during the last tile or the encoding (a one-tile job has no later tile boundary)
            return False
        put_with_retries(self.storage, job_id, result_name(params.format), encoded)  # a store that blinks is retried
        return True
