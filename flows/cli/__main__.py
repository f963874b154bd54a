"""`python -m flows.cli`: the `facenet` command without the console script."""

import sys

from flows.cli import main

sys.exit(main())
