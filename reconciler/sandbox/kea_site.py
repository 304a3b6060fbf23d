"""The sandbox's Kea variant (``reconciler sandbox --dhcp kea``): Kea + PostgreSQL instead of dhcpd.

Same site, same proof, other DHCP server: a private PostgreSQL cluster in the
sandbox's server namespace with Kea's schema, kea-dhcp4 and kea-ctrl-agent
beside it, and two targets in the runtime config: ``kea-conf`` (subnets, pools
and boot classes through the control agent) and ``kea-hosts`` (reservations as
rows of Kea's host database). Kea starts on the config ``kea-conf`` renders
with no subnets; its first pass then sets the inventory's subnets live, as
the watch loop's later passes would.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.config import load_config
from reconciler.engine import Engine
from reconciler.sandbox.kea import AGENT_USER, KeaServer
from reconciler.sandbox.netns import NetnsPair
from reconciler.sandbox.one_pass import sync_target
from reconciler.sandbox.postgres import PostgresCluster
from reconciler.targets.kea_conf import KeaConfTarget

CONF_TARGET = "kea-conf"
PASSWORD_FILE = "kea-db.password"  # relative to the runtime config's folder


class KeaSandbox:
    """Kea, its control agent and PostgreSQL for one sandbox run; cleaned up with the namespaces."""

    def __init__(self, pair: NetnsPair, workdir: Path) -> None:
        self.pair = pair
        self.workdir = workdir
        self.postgres = PostgresCluster(namespace=pair.server)
        pair.on_cleanup(self.postgres.close)
        self.server = KeaServer(pair, workdir / "kea")

    def config_sections(self) -> str:
        """The runtime config's two Kea targets (TOML)."""
        database = (
            f'db_host = "127.0.0.1"\ndb_port = {self.postgres.port}\n'
            f'db_name = "{self.postgres.database}"\ndb_user = "{self.postgres.user}"\n'
            f'db_password_file = "{PASSWORD_FILE}"\n'
        )
        return (
            f'[targets.{CONF_TARGET}]\ntype = "kea-conf"\n{database}'
            f'control_agent_url = "{self.server.agent_url}"\n'
            f'control_agent_user = "{AGENT_USER}"\n'
            f'control_agent_password_file = "{self.server.agent_password_file}"\n'
            f'interfaces = ["{self.pair.server_if}"]\n'
            f'control_socket = "{self.server.socket}"\n'
            f'[targets.dhcp]\ntype = "kea-hosts"\n{database}'
        )

    def start(self, config_path: Path) -> int:
        """PostgreSQL with Kea's schema, then Kea on an empty config, then kea-conf's first pass.

        Returns kea-dhcp4's pid.
        """
        self.postgres.start()
        self.postgres.write_password_file(self.workdir / PASSWORD_FILE)
        engine = Engine(load_config(config_path))
        state = engine.compile(engine.load())
        target = next(t for t in engine.targets if t.name == CONF_TARGET)
        assert isinstance(target, KeaConfTarget)
        self.server.start(target.render([]))
        sync_target(target, state, namespace=self.pair.server)
        pid = self.server.pid()
        if pid is None:
            raise RuntimeError(
                f"kea-dhcp4 stopped after its first config: {self.server.log_tail()}"
            )
        return pid

    def pids(self) -> list[int]:
        return [p.pid for p in (self.server.dhcp4, self.server.agent) if p is not None]

    def folders(self) -> tuple[Path, ...]:
        """The folders made outside the sandbox's own: PostgreSQL's and Kea's sockets'."""
        return (self.postgres.root, self.server.rundir)
