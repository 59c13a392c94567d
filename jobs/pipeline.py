"""Ray job: run the whole pipeline (assets, render, train, eval) or the stages named by --stages, in order.

    ray job submit --working-dir . -- python jobs/pipeline.py CONFIG [--stages assets,render] [--set key.path=value ...]
    python jobs/pipeline.py CONFIG [--set ...]      # on a local Ray (started here)
"""

import sys
from pathlib import Path

# Run as a script: put the repository root (not this folder) first on the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from jobs._entry import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(None, prog="jobs/pipeline.py", description=__doc__.splitlines()[0]))
