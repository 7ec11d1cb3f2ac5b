"""The `esrgan` command: one flat command set, each room contributing its own commands."""

import typer

from models.cli import app as models_app
from models.upscale_cli import app as upscale_app
from service.cli import app as service_app
from training.cli import app as training_app
from training.eval_cli import app as eval_app

app = typer.Typer(help="ESRGAN super-resolution: upscale, convert weights, train, and serve.", no_args_is_help=True)
app.add_typer(models_app)
app.add_typer(upscale_app)
app.add_typer(training_app)
app.add_typer(eval_app)
app.add_typer(service_app)
