import sys

from runner_svc.cli import main

sys.exit(main())
