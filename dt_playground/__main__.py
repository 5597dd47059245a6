import sys

from dt_playground.cli.main import main

sys.exit(main())
