"""Building, changing and removing environments through the AWS API.

provisioner.py  the article's steps, ensure_* (find by tag, create if missing)
kinds.py        the resource kinds in delete order: one table that teardown, sweep and leftovers walk
teardown.py     down: everything of one environment, in that order, with waiters
sweep.py        every expired environment of this project
drifts.py       misconfigurations of a good environment (the checks' expectations live in tests/)
tags.py, ledger.py  how what we create is marked and remembered
"""
