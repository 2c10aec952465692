"""Entry point of a verifier worker process: `python -m qwq.verify._worker FD MEMORY_LIMIT [MODULE...]`.

Kept apart from pool.py so that running it does not re-execute a module the package already imported.
"""

import sys
from multiprocessing.connection import Connection

from qwq.verify.pool import worker_main

if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])), tuple(sys.argv[3:]), int(sys.argv[2]) or None)
