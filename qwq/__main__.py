import sys

from qwq.cli import main

sys.exit(main())
