"""``python -m runtime.cli``: the same as ``lambda-registry``."""

import sys

from runtime.cli import main

sys.exit(main())
