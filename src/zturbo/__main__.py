"""`python -m zturbo` (and `accelerate launch -m zturbo ...`) run the CLI."""

from .cli import main

raise SystemExit(main())
