"""``python -m graphopt``: the command line."""

from graphopt.cli.app import main

if __name__ == "__main__":
    main()
