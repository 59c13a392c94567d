"""``python -m lrm_dist``: the ``lrm-dist`` CLI where the console script is not installed (``pip install --target``)."""

import sys

from lrm_dist.cli import main

sys.exit(main())
