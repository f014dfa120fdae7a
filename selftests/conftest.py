"""The project's own tests: they run the verification suite (tests/) as a user would."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The moto-server fixtures (`moto_server`, `aws`) for every test of the aws target.
pytest_plugins = ["selftests.moto_server"]
