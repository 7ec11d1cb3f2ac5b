"""Every setting of the service and its workers, typed in one place and read from `ESRGAN_*` environment variables.

The API process and `esrgan worker` read the same settings, so one `.env` file (or one compose `environment:` block)
configures both. Hand them out through `get_settings()`; tests build a `Settings(...)` and pass it to `create_app`.
"""

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from esrgan.models.registry import DEFAULT_PAIR

MB = 1024 * 1024


@dataclass(frozen=True)
class WeightsEntry:
    """One model the service offers: a registry name (a pair or a single model), a name with our own PSNR and GAN
    files, or a name with one weights file used as it is (a single model: no alpha)."""

    name: str
    psnr: Path | None = None  # psnr, gan and weights all None: `name` is looked up in models.registry
    gan: Path | None = None
    weights: Path | None = None  # a single model's file


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESRGAN_", env_file=".env", extra="ignore")

    # Queue: unset means jobs run on worker threads inside the API process (one command, no Redis).
    redis_url: str | None = None
    queue_name: str = "esrgan"
    # Inputs and results, shared by the API and every worker (a volume in compose), unless storage_url names another
    # place: `s3://bucket/prefix` (an S3-compatible object store), `file:///path` or a path (a folder, as storage_dir).
    storage_dir: Path = Path("data/jobs")
    storage_url: str | None = None
    # The object store's address for MinIO, R2, Ceph...; unset: AWS S3. Region and credentials come from boto3's own
    # chain (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, a host role), never from here.
    s3_endpoint_url: str | None = None
    s3_presign_endpoint_url: str | None = None  # the address clients download results from, if not s3_endpoint_url
    # Seconds a presigned result URL stays valid (GET /jobs/{id}/result redirects there); 0: the API streams results.
    s3_presign_seconds: int = Field(300, ge=0, le=7 * 24 * 3600)
    # A folder with less free space than this is not ready, and refuses uploads (results need many times their room).
    min_free_bytes: int = Field(100 * MB, ge=0)
    # Models, comma-separated. An entry is a registry name (a pair such as `esrgan-compact-x4`, or a single model such
    # as `realesr-animevideov3`), `NAME=PSNR_FILE+GAN_FILE` (a pair), or `NAME=FILE` or a bare FILE (a single model,
    # named by its file's stem). The first entry is the default for requests that do not name a model.
    weights: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEFAULT_PAIR])
    # Where every pair's alpha starts, for the whole server; unset: each pair's own default (the registry's, or the
    # paper's 0.8 for a pair of one's own files).
    default_alpha: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # What the network computes in (the weights and the alpha blend stay fp32): auto is fp16 on CUDA and bf16 on a CPU
    # with native bf16 (AVX512_BF16 or AMX), else fp32; each worker resolves auto on its own machine.
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    tile: int | None = Field(None, ge=16)  # None: the engine picks a tile size for the device
    max_upload_bytes: int = Field(20 * MB, gt=0)
    max_pixels: int = Field(4_000_000, gt=0)  # input pixels; the output has scale^2 times as many
    result_ttl: int = Field(3600, gt=0)  # seconds a finished or failed job and its files are kept
    job_timeout: int = Field(3600, gt=0)  # seconds one job may run before the worker gives up on it
    worker_concurrency: int = Field(1, ge=1)  # worker threads (in-process mode) or processes (`esrgan worker`)
    # torch threads per worker; 0: OMP_NUM_THREADS if set, else the cores shared out among worker_concurrency
    # (workers each with torch's default of every core would oversubscribe the CPU and run slower than one).
    threads: int = Field(0, ge=0)
    # Seconds between worker heartbeats; a job whose worker misses about three of them is retried once, then failed.
    heartbeat: int = Field(10, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_key: SecretStr | None = None  # when set, every API call needs `X-API-Key: ...` or `Authorization: Bearer ...`
    wait_timeout: float = Field(120.0, gt=0)  # seconds `POST /upscale?wait=true` waits before answering 202
    # Seconds a connection may take to send a request's head (request line and headers); a slower one is closed, so
    # clients that send half a header and wait cannot hold connections open.
    head_timeout: float = Field(10.0, gt=0)
    archive_max_jobs: int = Field(100, ge=1)  # results one `GET /jobs/archive` may bundle into its zip

    @property
    def torch_threads(self) -> int:
        """`threads`, else OMP_NUM_THREADS (the variable torch users already set), else the cores per worker."""
        if self.threads:
            return self.threads
        if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
            return int(os.environ["OMP_NUM_THREADS"])
        return max(1, len(os.sched_getaffinity(0)) // self.worker_concurrency)

    @field_validator("weights", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Comma-separated environment values become lists (`a,b` rather than JSON `["a","b"]`)."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("weights")
    @classmethod
    def _parse_weights(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one model is needed")
        entries = [parse_weights_entry(item) for item in value]
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return value

    @field_validator("api_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the API key must be at least 16 characters (try `openssl rand -hex 16`)")
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value and value.startswith("s3://"):
            split_s3_url(value)
        elif value and "://" in value and not value.startswith("file:///"):
            raise ValueError(f"storage URL {value!r}: use s3://BUCKET/PREFIX, file:///ABSOLUTE/PATH or a path")
        return value or None

    @field_validator("s3_endpoint_url", "s3_presign_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http:// or https:// URL")
        return value or None

    @model_validator(mode="after")
    def _safe_cors(self) -> "Settings":
        if "*" in self.cors_origins and self.api_key is not None:
            raise ValueError("CORS origin '*' together with an API key would let any web page use the key")
        return self

    @property
    def weight_entries(self) -> list[WeightsEntry]:
        return [parse_weights_entry(item) for item in self.weights]

    @property
    def default_model(self) -> str:
        return self.weight_entries[0].name


def parse_weights_entry(item: str) -> WeightsEntry:
    """`esrgan-compact-x4` -> registry entry; `mine=/w/psnr.safetensors+/w/gan.safetensors` -> our own pair;
    `anime=/w/net.pth` or `/w/net.pth` -> a single model (a bare path: one with a folder or a weights suffix)."""
    if "=" not in item:
        path = Path(item)
        if "/" not in item and path.suffix not in WEIGHTS_SUFFIXES:
            return WeightsEntry(item)
        return WeightsEntry(path.stem, weights=_weights_file(item, item))
    name, _, files = item.partition("=")
    psnr, plus, gan = files.partition("+")
    if not name.strip() or not psnr or (plus and not gan):
        raise ValueError(f"weights entry {item!r} must look like NAME=PSNR_FILE+GAN_FILE or NAME=FILE")
    if not plus:
        return WeightsEntry(name.strip(), weights=_weights_file(item, psnr))
    return WeightsEntry(name.strip(), _weights_file(item, psnr), _weights_file(item, gan))


WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def _weights_file(item: str, path: str) -> Path:
    if not Path(path).is_file():
        raise ValueError(f"weights entry {item!r}: {path} is not a file")
    return Path(path)


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"); ValueError for a URL without a valid bucket name."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"storage URL {url!r}: the bucket must be 3-63 lower-case letters, digits, dots or hyphens")
    return bucket, prefix.strip("/")


def redacted(url: str) -> str:
    """`url` with its password replaced by `***`: the form of a URL that may be logged or shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@lru_cache
def get_settings() -> Settings:
    return Settings()
