"""`python -m belamy` (and `torchrun -m belamy`) is the `belamy` command."""

import sys

from belamy.cli import main

sys.exit(main())
