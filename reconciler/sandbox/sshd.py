"""A real OpenSSH server in a network namespace that serves git repositories over ssh.

Anything that fetches git over ``ssh://`` with a deploy key and a pinned host key
(``[watch] ssh_identity`` / ``ssh_known_hosts``, a Site's ``source.secretRef`` with
``identity`` + ``known_hosts``) needs a server that, like a real git host, checks
the client's key and proves its own. This is Debian's sshd, unpacked (not installed
as a service) by ``scripts/fetch-sshd.sh``, run as root with a config of its own:
its own host key, one ``authorized_keys`` file, public keys only, no PAM, no
forwarding, no tty; ``git-upload-pack``/``git-receive-pack`` run as the client asks,
as on any git host reached over ssh.

sshd listens on port 22 of the loopback of a namespace made for it, so it never
meets the machine's own network. The process that fetches (the test, the operator
running in the test's process, a ``reconciler watch`` subprocess) reaches it through
a relay on 127.0.0.1 of the machine: a thread that copies bytes from each accepted
connection to one it opens inside the namespace; the SSH session runs end to end
between ssh and sshd. sshd is started under ``timeout``, so even a test killed
before its clean-up leaves no server running longer than ``lifetime`` seconds.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.sandbox.netns import (
    MissingTool,
    lone_namespace,
    popen_in,
    read_text,
    stop_process,
    wait_for,
)
from reconciler.sandbox.relay import Relay

SSHD_ROOT = Path("/usr/local/lib/reconciler/openssh-server")  # scripts/fetch-sshd.sh
SSHD = SSHD_ROOT / "usr/sbin/sshd"
SSHD_SESSION = SSHD_ROOT / "usr/lib/openssh/sshd-session"  # OpenSSH >= 9.8 (Debian 13)
SSHD_AUTH = SSHD_ROOT / "usr/lib/openssh/sshd-auth"  # OpenSSH >= 10.0 (Debian 13)
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; it must exist, root's, 0755
LOOPBACK = "127.0.0.1"


def make_key(path: Path, *, comment: str) -> str:
    """Write a new ed25519 key pair (``path``, ``path``.pub, no passphrase); its public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return path.with_name(path.name + ".pub").read_text().strip()


@dataclass
class SshGitHost:
    """A running server: where to reach it, the host key to pin, and its log."""

    port: int  # of the relay on 127.0.0.1
    host_key: str  # "ssh-ed25519 AAAA... comment"
    log_path: Path
    user: str = "root"

    def url(self, repo: Path) -> str:
        """The ssh:// URL of a repository (an absolute path on this machine)."""
        return f"ssh://{self.user}@{LOOPBACK}:{self.port}{repo.resolve().as_posix()}"

    def known_hosts(self) -> str:
        """A known_hosts line pinning this server's host key for its URL's host and port."""
        algorithm, key = self.host_key.split()[:2]
        return f"[{LOOPBACK}]:{self.port} {algorithm} {key}\n"

    def log(self) -> str:
        """sshd's log so far (VERBOSE: accepted keys and fingerprints, refusals)."""
        return read_text(self.log_path)


def _config(folder: Path) -> str:
    lines = [
        f"ListenAddress {LOOPBACK}:22",
        f"HostKey {folder / 'host_key'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        "AllowUsers root",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the files live under /tmp (mode 1777), which StrictModes refuses
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTTY no",
        "AcceptEnv GIT_PROTOCOL",  # git protocol v2, as git hosts allow
        "LoginGraceTime 30",
        "LogLevel VERBOSE",
    ]
    if SSHD_SESSION.exists():  # the unpacked tree is not where the binary was built to look
        lines += [f"SshdSessionPath {SSHD_SESSION}", "PerSourcePenalties no"]
    if SSHD_AUTH.exists():
        lines.append(f"SshdAuthPath {SSHD_AUTH}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def ssh_git_host(
    folder: Path, *, authorized_keys: Sequence[str], lifetime: float = 600
) -> Iterator[SshGitHost]:
    """Run sshd (in a namespace of its own) letting in ``authorized_keys``; stop it after.

    ``folder`` receives the config, the host key, the authorized keys and the log.
    Raises MissingTool when the server was not unpacked, TimeoutError when it does
    not listen within 20 s (the message holds its log).
    """
    if not SSHD.exists():
        raise MissingTool(f"not installed: {SSHD} (run scripts/fetch-sshd.sh as root)")
    folder.mkdir(parents=True, exist_ok=True)
    host_key = make_key(folder / "host_key", comment="reconciler-test-sshd")
    # "restrict": no forwarding, no pty, no agent; commands (git-upload-pack) still run.
    (folder / "authorized_keys").write_text("".join(f"restrict {k}\n" for k in authorized_keys))
    (folder / "sshd_config").write_text(_config(folder))
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log_path = folder / "sshd.log"
    with lone_namespace("ssh") as namespace, log_path.open("wb") as log:
        command = [str(SSHD), "-D", "-e", "-f", str(folder / "sshd_config")]
        process = popen_in(
            namespace,
            ["timeout", "--kill-after=5", str(lifetime), *command],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        relay: Relay | None = None
        try:
            wait_for(
                lambda: "Server listening" in read_text(log_path) or process.poll() is not None,
                timeout=20, what="sshd to listen",
            )  # fmt: skip
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited: {read_text(log_path).strip()}")
            relay = Relay(namespace, host=LOOPBACK, port=22)
            yield SshGitHost(port=relay.local_port, host_key=host_key, log_path=log_path)
        finally:
            if relay is not None:
                relay.close()
            stop_process(process, timeout=10)
