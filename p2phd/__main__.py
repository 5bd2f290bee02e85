"""`python -m p2phd` runs the command line (also under torchrun)."""

from p2phd.cli import main

if __name__ == "__main__":
    main()
