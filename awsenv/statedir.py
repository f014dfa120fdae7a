"""What an environment's state directory holds, and what is left of it once the environment is gone.

Every file the tools write there is named here with what it is for; README's table of them is
checked against this list. After a `down` that left nothing (and after `pytest --provision`'s
teardown), the directory keeps only what a later command needs: no private key, no host pins, no
SSH config of hosts that no longer exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common import files

from .settings import Settings


@dataclass(frozen=True)
class StateFile:
    name: str
    holds: str
    after_down: str   # "removed", or why it stays


STATE_FILES = (
    StateFile("id_ed25519", "the environment's private SSH key (0600; only its public half is imported)",
              "removed (the key pair is deleted too); a key given with --ssh-key is never touched"),
    StateFile(".twotier-key", "the public half of the key written here: proof that id_ed25519 is ours", "removed"),
    StateFile("twotier-known-hosts", "the hosts' SSH keys, pinned on first contact", "removed"),
    StateFile("ssh_config", "an OpenSSH config for the hosts (`ssh -F ssh_config web`)", "removed"),
    StateFile("ledger.jsonl", "every ID the moment AWS returned it, so `down` finds what a crash left",
              "removed once nothing of the environment is left"),
    StateFile(".twotier-lock", "who holds the environment now (one up/down/drift/sweep at a time)",
              "kept: empty of meaning once its holder ends"),
    StateFile("lab.json", "local: the lab's API endpoint and its own credentials (0600)", "removed when the lab stops"),
    StateFile("converge.json", "local: the lab's last converge pass", "removed when the lab stops"),
    StateFile("settle-request", "local: asks the lab's daemon for a converge pass", "removed when the lab stops"),
    StateFile("instances/", "local: each instance's disk (an overlay on its own tmpfs)", "removed when the lab stops"),
    StateFile("lab.log", "local: the lab daemon's log", "kept: what the lab did, for a look afterwards"),
    StateFile("lab.ssh_config", "local: OpenSSH's way to any host launched in the lab", "removed when the lab stops"),
    StateFile("lab.known_hosts", "local: the host keys OpenSSH pinned through lab.ssh_config",
              "removed when the lab stops"),
)


def forget_after_down(settings: Settings, progress=print) -> None:
    """The environment is gone: remove what only it could use. A key given with --ssh-key, a file
    there we did not write (no matching mark), and anything else in the folder stay as they are."""
    from .hosts.ssh import SSH_CONFIG_HEADER
    from .provisioning.provisioner import KEY_MARK

    folder = settings.state_dir
    removed = []
    key, mark = folder / "id_ed25519", folder / KEY_MARK
    if settings.ssh_key is None and _is_regular(key) and _is_regular(mark):
        # The mark holds the public half we wrote: the key file beside it is ours.
        from .hosts.ssh import load_key

        try:
            ours = load_key(key, own=True)
            if (files.read_text(mark) or "").strip() == f"{ours.get_name()} {ours.get_base64()}":
                files.remove(key)
                files.remove(mark)
                removed += [key.name, mark.name]
        except Exception:  # noqa: BLE001 - not a key we can read: not ours to remove
            pass
    config = folder / "ssh_config"
    if _is_regular(config) and (files.read_text(config) or "").startswith(SSH_CONFIG_HEADER):
        files.remove(config)
        removed.append(config.name)
    if removed:
        progress(f"state dir {folder}: removed {', '.join(removed)} (the environment is gone)")


def kept_line(settings: Settings) -> str | None:
    """What the state directory still holds, for the last line of a `down`."""
    folder = settings.state_dir
    kept = sorted(p.name for p in folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []
    return f"state dir {folder} keeps: {', '.join(kept)}" if kept else None


def _is_regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()
