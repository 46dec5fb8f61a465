"""``python -m sweeper.cli``: the same as the ``sweeper`` script."""

from __future__ import annotations

import sys

from sweeper.cli._main import main

sys.exit(main())
