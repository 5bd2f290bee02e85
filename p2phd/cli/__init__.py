"""The `p2phd` command line: one thin typer command per subcommand.

Each command parses its options, builds the frozen config, calls one core function and shows
its progress. Importing the modules below registers their commands on `app`, in the order
`p2phd --help` lists them (hence no import sorting here).
"""
# isort: skip_file

from p2phd.cli.app import app, main
from p2phd.cli import data  # noqa: F401  toy, prep
from p2phd.cli import train  # noqa: F401  train-global, train-local, train-joint
from p2phd.cli import features  # noqa: F401  encode-features, cluster(-features)
from p2phd.cli import synth  # noqa: F401  synthesize
from p2phd.cli import edit  # noqa: F401  edit
from p2phd.cli import evaluate  # noqa: F401  evaluate
from p2phd.cli import export  # noqa: F401  export
from p2phd.cli import interop  # noqa: F401  import-reference
from p2phd.cli import inspection  # noqa: F401  inspect
from p2phd.cli import weights  # noqa: F401  weights fetch, weights list

__all__ = ["app", "main"]
