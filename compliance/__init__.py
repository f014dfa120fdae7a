"""The compliance data layer: what a run found, as data other tools (and the next run) can read.

One module per concern, none importing the pytest plugin (fixtures/ imports this package):
results (the results.json record and its schema), history (new / still failing since / fixed
against a previous run), waivers (known findings with a reason and an end date), asff and
securityhub (findings where teams already look), merge (shards of a fleet into one result),
summary (the same result as terminal lines, Markdown and HTML), text and files (escaping and
link-safe writes). A single-environment run is a fleet of one: every record carries its
environment's key from the start.
"""
