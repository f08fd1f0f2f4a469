"""``python -m trtllm_prune ...`` runs the command line."""

import sys

from trtllm_prune import main

if __name__ == "__main__":
    sys.exit(main())
