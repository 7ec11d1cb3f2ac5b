"""ESRGAN super-resolution as a self-hostable service: the one installed name.

Installed, the repository's root folders are this package's sub-packages: `esrgan.models` (networks, weights,
tiled inference), `esrgan.training`, `esrgan.service` (API, job queue, workers, storage) and `esrgan.web`.
"""
