import sys

from api_server.cli import main

sys.exit(main())
