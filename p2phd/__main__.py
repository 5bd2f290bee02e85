"""`python -m p2phd` runs the command line. Under torchrun prefer `torchrun --no-python p2phd
...`, which runs the installed script and cannot be shadowed by a folder named `p2phd`."""

import sys


def _shadowing_folder() -> str | None:
    """The folder that `import p2phd` found instead of this package, if any: a folder named
    p2phd in the working directory (such as a clone's parent) wins over an editable install."""
    top = sys.modules.get("p2phd")
    if top is None or getattr(top, "__file__", None) is not None:
        return None
    return next(iter(getattr(top, "__path__", [])), "p2phd")


if __name__ == "__main__":
    shadow = _shadowing_folder()
    if shadow is not None:
        sys.stderr.write(
            f"error: {shadow}: a folder named p2phd here hides the installed p2phd from "
            "python -m; run the p2phd command instead (under torchrun: torchrun --no-python "
            "p2phd ...), or run from another folder\n"
        )
        sys.exit(2)
    from p2phd.cli import main

    main()
