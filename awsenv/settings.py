"""Every value the article leaves open is a setting; this module validates them once.

The same option table feeds provision.py's argparse and the pytest plugin, so both spell every
option, default and help text the same way.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EnvError

TARGETS = ("local", "moto", "aws")
DEFAULT_IMAGE = "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AL2_HINT = "amzn2"
# The lab's own internet hosts (mirror, DNS, vantage) sit in this block; on local and moto the
# admin CIDR defaults to it so SSH is never open to the world by default.
LAB_ADMIN_CIDR = "198.51.100.0/28"
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

# (option, default, help). Defaults of None are resolved per target in Settings.build.
OPTIONS = [
    ("target", "local", "where the environment lives: local (moto API + real hosts on this machine), "
                        "moto (API only, in-process) or aws (boto3's credential chain; honours AWS_ENDPOINT_URL)"),
    ("env", "twotier", "environment name: tag Env=NAME on everything provisioned"),
    ("region", None, "AWS region (default: us-east-1 on local/moto, boto3's configured region on aws)"),
    ("vpc-cidr", "10.0.0.0/16", "VPC CIDR (article 1.1)"),
    ("public-cidr", "10.0.1.0/24", "public subnet CIDR (article 1.2)"),
    ("private-cidr", "10.0.2.0/24", "private subnet CIDR (article 1.2)"),
    ("instance-type", "t2.micro", "EC2 instance type for both servers (article 2.1)"),
    ("image", DEFAULT_IMAGE, "AMI ID, or ssm:PARAMETER naming a public image parameter"),
    ("admin-cidr", None, "CIDR allowed to SSH to the web server (required on aws; default on local/moto: the lab's "
                         f"internet hosts {LAB_ADMIN_CIDR})"),
    ("ssh-user", "ec2-user", "login user on both servers"),
    ("ssh-key", None, "private key file for SSH (default: the one provision.py saved for --env)"),
    ("state-dir", None, "where keys, ssh_config, known_hosts and the lab live (default: ./.state/ENV)"),
]


@dataclass(frozen=True)
class Settings:
    target: str = "local"
    env: str = "twotier"
    region: str = "us-east-1"
    vpc_cidr: str = "10.0.0.0/16"
    public_cidr: str = "10.0.1.0/24"
    private_cidr: str = "10.0.2.0/24"
    instance_type: str = "t2.micro"
    image: str = DEFAULT_IMAGE
    admin_cidr: str | None = LAB_ADMIN_CIDR
    ssh_user: str = "ec2-user"
    ssh_key: Path | None = None
    state_dir: Path = field(default=REPO_ROOT / ".state" / "twotier")

    @property
    def os_family(self) -> str:
        # The lab's hosts are Debian whatever the AMI says; on AWS the image decides.
        if self.target == "local":
            return "debian"
        return "amazon-linux-2" if AL2_HINT in self.image else "amazon-linux-2023"

    @property
    def key_name(self) -> str:
        return f"twotier-{self.env}"

    @property
    def key_file(self) -> Path:
        return self.ssh_key or self.state_dir / "id_ed25519"

    def require_admin_cidr(self) -> str:
        if not self.admin_cidr:
            raise EnvError("--admin-cidr is required to provision on the aws target (SSH is never opened to the "
                           "world by default); give your own address, e.g. --admin-cidr 198.51.100.7/32")
        return self.admin_cidr

    @classmethod
    def build(cls, values: dict) -> "Settings":
        """Validate raw option values (None = not given) into Settings, or raise EnvError."""
        v = {k.replace("-", "_"): val for k, val in values.items() if val is not None}
        target = v.get("target", "local")
        if target not in TARGETS:
            raise EnvError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
        env = v.get("env", "twotier")
        if not ENV_NAME.match(env):
            raise EnvError(f"bad env name {env!r}: lower-case letters, digits and '-', starting with a letter, "
                           "at most 31 characters")
        if target == "aws":
            region = v.get("region") or _configured_region()
        else:
            region = v.get("region", "us-east-1")
        vpc = _network("vpc-cidr", v.get("vpc_cidr", cls.vpc_cidr))
        if not vpc.is_private:
            raise EnvError(f"--vpc-cidr {vpc} is not a private range (10/8, 172.16/12, 192.168/16)")
        if not 16 <= vpc.prefixlen <= 28:
            raise EnvError(f"--vpc-cidr {vpc}: AWS allows /16 to /28")
        pub = _network("public-cidr", v.get("public_cidr", cls.public_cidr))
        priv = _network("private-cidr", v.get("private_cidr", cls.private_cidr))
        for name, net in (("public-cidr", pub), ("private-cidr", priv)):
            if not net.subnet_of(vpc):
                raise EnvError(f"--{name} {net} is not inside --vpc-cidr {vpc}")
        if pub.overlaps(priv):
            raise EnvError(f"--public-cidr {pub} and --private-cidr {priv} overlap")
        # On aws there is no safe default: provisioning refuses without one (require_admin_cidr),
        # while checking an existing environment doesn't need it.
        admin_text = v.get("admin_cidr", None if target == "aws" else LAB_ADMIN_CIDR)
        admin = _network("admin-cidr", admin_text) if admin_text else None
        image = v.get("image", DEFAULT_IMAGE)
        if not (image.startswith("ssm:/") or re.match(r"^ami-[0-9a-f]{8,17}$", image)):
            raise EnvError(f"bad --image {image!r}: an AMI ID (ami-...) or ssm:/PARAMETER")
        state_dir = Path(v["state_dir"]) if "state_dir" in v else REPO_ROOT / ".state" / env
        key = _key_file(Path(v["ssh_key"])) if "ssh_key" in v else None
        return cls(target=target, env=env, region=region, vpc_cidr=str(vpc), public_cidr=str(pub),
                   private_cidr=str(priv), instance_type=v.get("instance_type", cls.instance_type),
                   image=image, admin_cidr=str(admin) if admin else None, ssh_user=v.get("ssh_user", cls.ssh_user),
                   ssh_key=key, state_dir=state_dir)


def _network(option: str, text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise EnvError(f"malformed --{option} {text!r}: {exc}") from None


def _key_file(path: Path) -> Path:
    """--ssh-key names the user's own private key: it must exist and be private (as OpenSSH insists)."""
    if not path.is_file():
        raise EnvError(f"--ssh-key {path}: no such file")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise EnvError(f"--ssh-key {path} is readable by others (mode {mode:o}); run chmod 600 {path}")
    return path


def _configured_region() -> str:
    import boto3

    region = os.environ.get("AWS_REGION") or boto3.session.Session().region_name
    if not region:
        raise EnvError("no AWS region configured: pass --region or set AWS_REGION")
    return region
