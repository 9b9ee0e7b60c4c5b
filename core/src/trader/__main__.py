"""``python -m trader``: the ``trader`` command, run by this very interpreter."""

from trader.cli import main

if __name__ == "__main__":
    main()
