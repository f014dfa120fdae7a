"""AWS-facing code, in floors (each imports only the ones above it):

settings.py, errors.py, waits.py   options and their validation, the one error type, bounded waits
files.py, display.py               state folders and reports (ours, never through a link); API text
                                   made safe to show. Neither imports more of awsenv than errors.py; lab/ uses files.py too
targets/        where the API is and how hosts are reached: aws, moto, local (the only target-aware code)
discovery/      the environment read into a typed snapshot
hosts/          SSH connections, host setup, the OS table, reachability probes
provisioning/   build, drift, tear down, sweep
environment.py  what checks and drifts touch: target, settings, snapshot, connections, stop/start
lifecycle.py    one pass: open, build or find, tear down, close; and what it cost

Nothing here imports the local data plane (lab/) except targets/local.py.
"""
