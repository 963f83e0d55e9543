"""Start UGAAR Explorer from a source checkout: ``python main.py``."""
import sys

from ugaar_app.main import main

if __name__ == "__main__":
    sys.exit(main())
