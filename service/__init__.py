"""The upscaling service: FastAPI app, job queue (RQ on Redis, or in-process threads), workers and storage."""
