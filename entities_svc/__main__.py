import sys

from entities_svc.cli import main

sys.exit(main())
