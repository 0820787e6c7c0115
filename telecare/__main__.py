import sys

from telecare.cli import main

sys.exit(main())
