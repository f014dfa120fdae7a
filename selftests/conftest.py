"""The project's own tests: they run the verification suite (tests/) as a user would."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
