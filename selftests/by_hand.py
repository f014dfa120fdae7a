"""What a user does by hand against a lab, for the self-tests that do it too: the AWS CLI with the
lab's credentials (and none of this shell's), and SSH to its hosts with paramiko (the DB through
the web server, as the article does)."""
from __future__ import annotations

import os

import paramiko


def clean_env(**extra) -> dict:
    """This process's environment without any AWS_ variable or AWS config file, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-creds",
               AWS_EC2_METADATA_DISABLED="true", **extra)
    return env


def ssh(host: str, sock, key: paramiko.PKey, timeout: float = 10.0) -> paramiko.SSHClient:
    """ec2-user@host over sock (a socket into the lab, or a channel through a jump host)."""
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(host, username="ec2-user", pkey=key, sock=sock, timeout=timeout, banner_timeout=timeout,
              auth_timeout=timeout, allow_agent=False, look_for_keys=False)
    return c


def jump(via: paramiko.SSHClient, host: str, key: paramiko.PKey) -> paramiko.SSHClient:
    """ec2-user@host through an SSH connection to another host (ProxyJump)."""
    chan = via.get_transport().open_channel("direct-tcpip", (host, 22), ("127.0.0.1", 0), timeout=10)
    return ssh(host, chan, key)


def run(client: paramiko.SSHClient, cmd: str, timeout: float = 300) -> tuple[int, str]:
    """(exit status, stdout + stderr) of a command on the host."""
    _, out, err = client.exec_command(cmd, timeout=timeout)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode() + err.read().decode()
