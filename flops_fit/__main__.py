"""``python -m flops_fit ...`` is the ``flops-fit`` command (used by the workflow's shell rules)."""

import sys

from flops_fit.cli import main

sys.exit(main())
