"""``python -m kernel``: the command line (what ``torchrun -m kernel run FILE`` starts in each process)."""
import sys

from .cli import main

sys.exit(main())
