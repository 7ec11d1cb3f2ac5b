"""The `esrgan` command: one flat command set, each room contributing its own commands.

The container images leave the training code out (they only serve), so its commands join only where it is installed.
"""

import importlib.util

import typer

from esrgan.models.cli import app as models_app
from esrgan.models.upscale_cli import app as upscale_app
from esrgan.service.cli import app as service_app

app = typer.Typer(help="ESRGAN super-resolution: upscale, convert weights, train, and serve.", no_args_is_help=True)
app.add_typer(models_app)
app.add_typer(upscale_app)
if importlib.util.find_spec("esrgan.training") is not None:
    from esrgan.training.cli import app as training_app
    from esrgan.training.eval_cli import app as eval_app

    app.add_typer(training_app)
    app.add_typer(eval_app)
app.add_typer(service_app)
