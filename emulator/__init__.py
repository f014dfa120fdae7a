"""The project's emulated AWS API: moto in server mode, made to answer as the lab and EC2 need.

server.py   moto's threaded server on loopback with the lab's address rules (public addresses from
            198.51.100.0/24, a NAT gateway's private IP from its own subnet) and change signals for
            the converge loop.
Used by the lab daemon (the local target's API) and by the project's self-tests (the aws target
proven against moto). It never imports the verifier (awsenv/) nor the data plane (lab/).
"""
