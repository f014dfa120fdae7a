"""The bottom floor: what awsenv/, lab/ and compliance/ share, importing nothing of the project.

display.py  text from outside (the API, a path) made safe to show on a terminal and in a report
errors.py   EnvError: the one-line error every CLI of the project prints as it is
files.py    files kept link-safe: ours (state folders, reports) and those a user names (results)
"""
