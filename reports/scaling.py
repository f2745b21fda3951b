"""`python -m reports.scaling --experiment NAME [--sweep-id ID] [--tracking-uri URI] [--out DIR]`
(the same as `python -m reports scaling ...`)."""
from __future__ import annotations

import sys

from reports.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["scaling", *sys.argv[1:]]))
