"""The local data plane: turns what the moto API holds into real namespaces, nftables and containers.

One module per AWS object kind it realises (instances, fabric + route tables, security groups,
gateways, the internet), plus image/mirror builders, the converge loop and the daemon.
"""
