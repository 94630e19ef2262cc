"""``python -m ensemble`` runs the command-line interface."""

from ensemble.cli import main

if __name__ == "__main__":
    main()
