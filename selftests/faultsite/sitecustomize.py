"""Loaded by Python at start-up in processes the self-tests run with this folder on PYTHONPATH:
installs the test-only fault injector (selftests/faults.py) when TWOTIER_TEST_FAULTS is set."""
import os

if os.environ.get("TWOTIER_TEST_FAULTS"):
    from selftests.faults import install_into_every_session

    install_into_every_session()
