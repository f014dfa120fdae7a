"""Every value the article leaves open is a setting; this module validates them once.

OPTIONS is the only place a default is written: provision.py's argparse, the pytest plugin and
Settings.build all read it. Defaults that depend on the target (region, admin CIDR, state
directory) are the target's decision (awsenv/targets/) and are handed to build().
"""
from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import EnvError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
# What STS AssumeRole accepts (IAM's role ARN; RoleSessionName: 2 to 64 of [\w+=,.@-]).
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
PROFILE_NAME = re.compile(r"[\w+=,.@:/-]{1,128}")
AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")
SSH_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
DEFAULT_IMAGE = "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
# The widest admin CIDR `up` opens SSH to without being told twice: a /8 (16.7 million addresses)
# is already far more than any admin network; anything wider (0.0.0.0/1, 0.0.0.0/0) is the internet.
WIDEST_ADMIN_PREFIX = 8
WIDE_ADMIN_FLAG = "--allow-wide-admin-cidr"


@dataclass(frozen=True)
class Option:
    name: str                 # the command-line spelling, without "--"
    default: str | None       # None: not set, or decided by the target (its help says which)
    help: str

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


OPTIONS = (
    Option("target", "local", "where the environment lives: local (moto API + real hosts on this machine), "
                              "moto (API only, in-process) or aws (boto3's credential chain; honours AWS_ENDPOINT_URL)"),
    Option("env", "twotier", "environment name: tag Env=NAME on everything provisioned"),
    Option("region", None, "AWS region (default: us-east-1 on local and moto, whatever AWS_REGION, AWS_DEFAULT_REGION "
                           "or the profile says don't apply there; boto3's configured region on aws)"),
    Option("vpc-cidr", "10.0.0.0/16", "VPC CIDR (article 1.1)"),
    Option("public-cidr", "10.0.1.0/24", "public subnet CIDR (article 1.2)"),
    Option("private-cidr", "10.0.2.0/24", "private subnet CIDR (article 1.2)"),
    Option("instance-type", "t2.micro", "EC2 instance type for both servers (article 2.1)"),
    Option("image", DEFAULT_IMAGE, "AMI ID, or ssm:PARAMETER naming a public image parameter"),
    Option("admin-cidr", None, "CIDR allowed to SSH to the web server (required to provision on aws; default on "
                               "local and moto: the lab's own internet hosts)"),
    Option("ssh-user", "ec2-user", "login user on both servers"),
    Option("ssh-key", None, "private key file for SSH (default: the one provision.py saved for --env)"),
    Option("state-dir", None, "where keys, ssh_config, pinned host keys and the lab live "
                              "(default: ./.state/TARGET[/REGION]/ENV)"),
)
DEFAULTS = {o.dest: o.default for o in OPTIONS}
# Options whose value is a fact about the environment, so that a check-only run can compare it.
STATED = ("vpc_cidr", "public_cidr", "private_cidr", "instance_type", "admin_cidr", "ssh_user")


@dataclass(frozen=True)
class Settings:
    target: str
    env: str
    region: str
    vpc_cidr: str
    public_cidr: str
    private_cidr: str
    instance_type: str
    image: str
    admin_cidr: str | None
    ssh_user: str
    ssh_key: Path | None
    state_dir: Path
    given: frozenset[str] = frozenset()     # the options the user stated explicitly
    allow_wide_admin_cidr: bool = False     # up may open SSH to an admin CIDR wider than a /8
    # How the aws target gets its credentials when a fleet entry says (README "Fleets"): a named
    # profile of the shared config, and a role to assume with STS in a session named after the run.
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str | None = None

    @property
    def role_account(self) -> str | None:
        """The account of the role to assume (the environment's account, as cross-account scanners read it)."""
        m = ROLE_ARN.fullmatch(self.role_arn or "")
        return m.group(1) if m else None

    @property
    def key_name(self) -> str:
        return f"twotier-{self.env}"

    @property
    def key_file(self) -> Path:
        return self.ssh_key or self.state_dir / "id_ed25519"

    @property
    def key_is_ours(self) -> bool:
        """The key file is the one this project keeps in the state folder (not the user's --ssh-key)."""
        return self.ssh_key is None

    def require_admin_cidr(self) -> str:
        """The admin CIDR that provisioning opens SSH to: given (the aws target has no default) and no
        wider than a /8 unless --allow-wide-admin-cidr says the width is meant."""
        if not self.admin_cidr:
            raise EnvError("--admin-cidr is required to provision on the aws target (SSH is never opened to the "
                           "world by default); give your own address, e.g. --admin-cidr 198.51.100.7/32")
        net = ipaddress.ip_network(self.admin_cidr)
        if net.prefixlen < WIDEST_ADMIN_PREFIX and not self.allow_wide_admin_cidr:
            whom = "the whole internet" if net.prefixlen == 0 else f"{net.num_addresses:,} addresses"
            raise EnvError(f"--admin-cidr {net} would open SSH (tcp/22) to {whom}, wider than a "
                           f"/{WIDEST_ADMIN_PREFIX}; give your own address (e.g. 198.51.100.7/32), or add "
                           f"{WIDE_ADMIN_FLAG} if that is really meant")
        return self.admin_cidr

    @classmethod
    def build(cls, values: dict, *, region: str, admin_cidr: str | None, state_dir: Path) -> Settings:
        """Validate raw option values (None = not given) into Settings, or raise EnvError.

        region, admin_cidr and state_dir are the target's defaults, used when the option isn't given.
        """
        given = {k.replace("-", "_"): v for k, v in values.items() if v is not None}
        v = {**DEFAULTS, **given}
        env = v["env"]
        check_env_name(env)
        vpc = _network("vpc-cidr", v["vpc_cidr"])
        if not vpc.is_private:
            raise EnvError(f"--vpc-cidr {vpc} is not a private range (10/8, 172.16/12, 192.168/16)")
        if not 16 <= vpc.prefixlen <= 28:
            raise EnvError(f"--vpc-cidr {vpc}: AWS allows /16 to /28")
        pub = _network("public-cidr", v["public_cidr"])
        priv = _network("private-cidr", v["private_cidr"])
        for name, net in (("public-cidr", pub), ("private-cidr", priv)):
            if not net.subnet_of(vpc):
                raise EnvError(f"--{name} {net} is not inside --vpc-cidr {vpc}")
            if not 16 <= net.prefixlen <= 28:
                raise EnvError(f"--{name} {net}: AWS allows subnets of /16 to /28")
        if pub.overlaps(priv):
            raise EnvError(f"--public-cidr {pub} and --private-cidr {priv} overlap")
        admin_text = v["admin_cidr"] or admin_cidr
        admin = _admin_network(admin_text) if admin_text else None
        image = v["image"]
        if not (image.startswith("ssm:/") or AMI_ID.fullmatch(image)):
            raise EnvError(f"bad --image {image!r}: an AMI ID (ami-...) or ssm:/PARAMETER")
        if not SSH_USER.fullmatch(v["ssh_user"]):
            raise EnvError(f"bad --ssh-user {v['ssh_user']!r}: a login name (lower-case letters, digits, '_', '-')")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.]{1,30}", v["instance_type"]):
            raise EnvError(f"bad --instance-type {v['instance_type']!r}: a type such as t2.micro")
        return cls(target=v["target"], env=env, region=v["region"] or region, vpc_cidr=str(vpc),
                   public_cidr=str(pub), private_cidr=str(priv), instance_type=v["instance_type"], image=image,
                   admin_cidr=str(admin) if admin else None, ssh_user=v["ssh_user"],
                   ssh_key=_key_file(Path(v["ssh_key"])) if v["ssh_key"] else None,
                   state_dir=Path(v["state_dir"]) if v["state_dir"] else state_dir,
                   given=frozenset(k for k in given if k in DEFAULTS),
                   allow_wide_admin_cidr=bool(v.get("allow_wide_admin_cidr")), **_access(values))


def _access(values: dict) -> dict:
    """The credentials a fleet entry names (profile, role to assume, the session's name), checked."""
    out = {k: values.get(k) for k in ("profile", "role_arn", "role_session_name")}
    if out["profile"] is not None and not (isinstance(out["profile"], str) and PROFILE_NAME.fullmatch(out["profile"])):
        raise EnvError(f"bad profile {out['profile']!r}: the name of a profile in the AWS config file")
    if out["role_arn"] is not None and not (isinstance(out["role_arn"], str) and ROLE_ARN.fullmatch(out["role_arn"])):
        raise EnvError(f"bad role_arn {out['role_arn']!r}: an IAM role's ARN, arn:aws:iam::ACCOUNT:role/NAME")
    name = out["role_session_name"]
    if name is not None and not ROLE_SESSION_NAME.fullmatch(name):
        raise EnvError(f"bad role session name {name!r}: 2 to 64 of letters, digits and +=,.@_-")
    return out


def check_env_name(env: str) -> str:
    # fullmatch: `$` would let a trailing newline through into file names and ssh_config.
    if not isinstance(env, str) or not ENV_NAME.fullmatch(env):
        raise EnvError(f"bad env name {env!r}: lower-case letters, digits and '-', starting with a letter, "
                       "at most 31 characters")
    return env


def _network(option: str, text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise EnvError(f"malformed --{option} {text!r}: {exc}") from None


def _admin_network(text: str) -> ipaddress.IPv4Network:
    try:
        if ipaddress.ip_network(text, strict=False).version == 6:
            raise EnvError(f"--admin-cidr {text}: an IPv6 range; the web server's SSH rule is IPv4 only here, so "
                           "give your IPv4 address (e.g. 198.51.100.7/32)")
    except ValueError:
        pass    # malformed: said below, as for every CIDR
    return _network("admin-cidr", text)


def check_region_name(region: str) -> str:
    """A region EC2 has in any partition (China and GovCloud too), from botocore's own endpoint data:
    no API call, and no profile or config file is read (AWS_PROFILE may name one that doesn't exist),
    so a typo is a bad option, said before anything starts."""
    if region not in _ec2_regions():
        raise EnvError(f"unknown region {region!r} (EC2 has e.g. us-east-1, eu-west-1, ap-northeast-1, cn-north-1, "
                       "us-gov-west-1)")
    return region


@functools.cache
def _ec2_regions() -> frozenset[str]:
    # Read once a process: a fleet checks the region of every environment, and parsing botocore's
    # endpoint data takes tens of milliseconds.
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    return frozenset(r for p in resolver.get_available_partitions() for r in resolver.get_available_endpoints("ec2", p))


def _key_file(path: Path) -> Path:
    """--ssh-key names the user's own private key: it must exist and be private (as OpenSSH insists)."""
    if not path.is_file():
        raise EnvError(f"--ssh-key {path}: no such file")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise EnvError(f"--ssh-key {path} is readable by others (mode {mode:o}); run chmod 600 {path}")
    return path
