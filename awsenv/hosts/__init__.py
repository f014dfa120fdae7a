"""Host access: SSH connections, host setup, the OS table, reachability probes."""
