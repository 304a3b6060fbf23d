"""Read an ISC dhcpd.conf (and the files it includes) into host and subnet records.

dhcpd's grammar is statements ending in ``;`` and blocks in ``{}``; this
module first builds that tree for any input (comments, strings and odd
spacing handled, ``include`` spliced in where it stands), then reads what the
inventory needs: ``host`` blocks (``hardware ethernet``, ``fixed-address``,
``option host-name``, and the ``filename`` and ``next-server`` a host states or
inherits from enclosing ``group`` blocks: what it would lose as a host made
over OMAPI, which gets only its subnet's and the global ones), ``subnet``
blocks with their ``range``s (also inside ``pool``), routers and domain,
inside ``shared-network`` or not. Classes, conditionals and other logic
cannot become inventory: they are skipped with a warning naming file and line.
A file that does not parse raises ``ImportFailure`` with file:line and what
was expected there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.importer.records import HostRecord, ImportFailure, Sources, SubnetRecord, Where
from reconciler.model.types import normalize_mac

_TOKEN = re.compile(r'\n|#[^\n]*|"(?:[^"\\\n]|\\.)*"|[{};,]|[^\s{};,"#]+|"')
_SKIPPED_WITH_WARNING = {"class", "subclass", "if", "elsif", "else", "on", "switch"}
_SKIPPED_QUIETLY = {"key", "failover", "zone", "option"}  # blocks with no hosts in them
MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    where: Where

    @property
    def value(self) -> str:
        """The text without quotes (strings) as dhcpd reads it."""
        if len(self.text) >= 2 and self.text[0] == '"' and self.text[-1] == '"':
            return re.sub(r"\\(.)", r"\1", self.text[1:-1])
        return self.text


@dataclass(slots=True)
class Statement:
    """``words ;`` or ``words { body }``."""

    words: list[Token]
    where: Where
    body: list[Statement] | None = None

    @property
    def head(self) -> str:
        return self.words[0].text.lower() if self.words else ""


def tokenize(text: str, file: str) -> list[Token]:
    tokens: list[Token] = []
    line = 1
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece == "\n":
            line += 1
        elif piece[0] == "#":
            continue
        elif piece == '"':
            raise ImportFailure(
                Where(file, line), 'expected a closing " before the end of the line'
            )
        else:
            tokens.append(Token(piece, Where(file, line)))
    return tokens


class _TreeBuilder:
    """Tokens -> statements, splicing in ``include`` files."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.stack: list[Path] = []

    def parse_file(self, path: Path, *, where: Where | None = None) -> list[Statement]:
        resolved = path if path.is_absolute() else self.base / path
        if len(self.stack) >= MAX_INCLUDE_DEPTH or resolved.resolve() in self.stack:
            raise ImportFailure(
                where or Where(str(path)), f"include of {path} loops back on itself"
            )
        try:
            text = resolved.read_text(errors="replace")
        except OSError as error:
            raise ImportFailure(
                where or Where(str(path)), f"cannot read {resolved}: {error.strerror}"
            ) from None
        self.stack.append(resolved.resolve())
        tokens = tokenize(text, str(resolved))
        _, statements = self._block(tokens, 0, opened=None)
        self.stack.pop()
        return statements

    def _block(
        self, tokens: list[Token], position: int, *, opened: Statement | None
    ) -> tuple[int, list[Statement]]:
        statements: list[Statement] = []
        words: list[Token] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token.text == ";":
                if words:
                    statements.extend(self._simple(words))
                words = []
            elif token.text == "{":
                statement = Statement(words, words[0].where if words else token.where)
                position, statement.body = self._block(tokens, position, opened=statement)
                statements.append(statement)
                words = []
            elif token.text == "}":
                if words:
                    raise ImportFailure(
                        words[-1].where, f"expected ';' after '{_show(words)}' before '}}'"
                    )
                if opened is None:
                    raise ImportFailure(token.where, "found '}' with no block open; remove it")
                return position, statements
            else:
                words.append(token)
        if words:
            raise ImportFailure(words[-1].where, f"expected ';' after '{_show(words)}'")
        if opened is not None:
            raise ImportFailure(
                opened.where,
                f"expected '}}' to close '{_show(opened.words)} {{' before the end of the file",
            )
        return position, statements

    def _simple(self, words: list[Token]) -> list[Statement]:
        if words[0].text.lower() != "include":
            return [Statement(words, words[0].where)]
        if len(words) != 2 or not words[1].text.startswith('"'):
            raise ImportFailure(words[0].where, 'expected include "FILE";')
        return self.parse_file(Path(words[1].value), where=words[0].where)


def _show(words: list[Token]) -> str:
    text = " ".join(t.text for t in words)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class _Scope:
    """Parameters hosts inherit from enclosing blocks.

    ``own_*`` are those set by the host block or a ``group`` around it, below its
    subnet: a host entry made over OMAPI would not have them."""

    filename: str | None = None
    next_server: str | None = None
    domain: str | None = None
    shared_network: str | None = None
    own_filename: str | None = None
    own_next_server: str | None = None


@dataclass(slots=True)
class _Reader:
    sources: Sources
    subnets: list[SubnetRecord] = field(default_factory=list)

    def walk(
        self,
        statements: list[Statement],
        scope: _Scope,
        subnet: SubnetRecord | None,
        *,
        own: bool = False,
    ) -> None:
        scope = self._parameters(statements, scope, own=own)
        for statement in statements:
            head = statement.head
            if statement.body is None:
                if subnet is not None:
                    self._subnet_statement(statement, subnet)
                continue
            if head == "host":
                self._host(statement, scope)
            elif head == "subnet":
                self._subnet(statement, scope)
            elif head == "shared-network":
                name = statement.words[1].value if len(statement.words) > 1 else ""
                self.walk(statement.body, _outer(scope, shared_network=name), None)
            elif head in ("group", "pool"):
                self.walk(statement.body, scope, subnet, own=head == "group")
            elif head in _SKIPPED_WITH_WARNING:
                self.sources.warnings.append(
                    f"{statement.where}: skipped '{_show(statement.words)} {{...}}': classes "
                    "and conditionals have no place in the inventory (the reconciler's "
                    "dhcpd.conf decides boot files by itself)"
                )
            elif head not in _SKIPPED_QUIETLY:
                self.sources.warnings.append(
                    f"{statement.where}: skipped unknown block '{_show(statement.words)} {{...}}'"
                )

    def _parameters(self, statements: list[Statement], scope: _Scope, *, own: bool) -> _Scope:
        for statement in statements:
            if statement.body is not None:
                continue
            words = statement.words
            if statement.head == "filename" and len(words) >= 2:
                scope = _replace(scope, filename=words[-1].value)
                if own:
                    scope = _replace(scope, own_filename=words[-1].value)
            elif statement.head == "next-server" and len(words) >= 2:
                scope = _replace(scope, next_server=words[1].value)
                if own:
                    scope = _replace(scope, own_next_server=words[1].value)
                self.sources.next_servers.append(words[1].value)
            elif _is_option(words, "domain-name") and len(words) >= 3:
                scope = _replace(scope, domain=words[2].value.split()[0])
        return scope

    def _subnet(self, statement: Statement, scope: _Scope) -> None:
        words = statement.words
        if len(words) != 4 or words[2].text.lower() != "netmask":
            raise ImportFailure(statement.where, "expected 'subnet ADDRESS netmask MASK {'")
        try:
            network = ipaddress.IPv4Network(f"{words[1].text}/{words[3].text}")
        except ValueError as error:
            raise ImportFailure(
                statement.where, f"expected a subnet address and its netmask: {error}"
            ) from None
        record = SubnetRecord(network, statement.where, shared_network=scope.shared_network)
        assert statement.body is not None
        inner = self._parameters(statement.body, _outer(scope), own=False)
        record.domain = inner.domain
        self.subnets.append(record)
        self.walk(statement.body, inner, record)

    def _subnet_statement(self, statement: Statement, subnet: SubnetRecord) -> None:
        words = statement.words
        if statement.head == "range":
            addresses = [w for w in words[1:] if w.text.lower() != "dynamic-bootp"]
            if not 1 <= len(addresses) <= 2:
                raise ImportFailure(statement.where, "expected 'range FIRST [LAST];'")
            first = _address(addresses[0], "range")
            last = _address(addresses[-1], "range")
            subnet.ranges.append((first, last))
        elif _is_option(words, "routers") and len(words) >= 3 and subnet.gateway is None:
            subnet.gateway = _address(words[2], "option routers")

    def _host(self, statement: Statement, scope: _Scope) -> None:
        if len(statement.words) != 2:
            raise ImportFailure(statement.where, "expected 'host NAME {'")
        name = statement.words[1].value
        assert statement.body is not None
        inner = self._parameters(statement.body, scope, own=True)
        mac: str | None = None
        address: ipaddress.IPv4Address | None = None
        host_name: str | None = None
        for item in statement.body:
            words = item.words
            if item.head == "hardware":
                if len(words) != 3 or words[1].text.lower() != "ethernet":
                    self.sources.warnings.append(
                        f"{item.where}: host {name}: only 'hardware ethernet' is imported"
                    )
                    continue
                try:
                    mac = normalize_mac(words[2].text)
                except ValueError:
                    raise ImportFailure(
                        words[2].where,
                        f"expected a MAC address of 6 octets after 'hardware ethernet', "
                        f"found {words[2].text!r}",
                    ) from None
            elif item.head == "fixed-address" and len(words) >= 2:
                address = self._fixed_address(item, name)
            elif _is_option(words, "host-name") and len(words) >= 3:
                host_name = words[2].value
            elif item.head == "ddns-hostname" and len(words) >= 2 and host_name is None:
                host_name = words[1].value
        if mac is None:
            self.sources.warnings.append(
                f"{statement.where}: host {name} has no 'hardware ethernet'; skipped"
            )
            return
        self.sources.hosts.append(
            HostRecord(
                mac=mac,
                where=statement.where,
                address=address,
                name=host_name,
                dhcp_name=name,
                filename=inner.own_filename,
                next_server=inner.own_next_server,
            )
        )

    def _fixed_address(self, item: Statement, name: str) -> ipaddress.IPv4Address | None:
        values = [w for w in item.words[1:] if w.text != ","]
        if len(values) > 1:
            self.sources.warnings.append(
                f"{item.where}: host {name} has {len(values)} fixed addresses; "
                f"the first ({values[0].text}) is imported"
            )
        try:
            return ipaddress.IPv4Address(values[0].text)
        except ValueError:
            self.sources.warnings.append(
                f"{item.where}: host {name}: fixed-address {values[0].text} is a name, "
                "not an address; its address is taken from DNS if a zone gives it"
            )
            return None


def _replace(scope: _Scope, **changes: str | None) -> _Scope:
    values = {
        "filename": scope.filename,
        "next_server": scope.next_server,
        "domain": scope.domain,
        "shared_network": scope.shared_network,
        "own_filename": scope.own_filename,
        "own_next_server": scope.own_next_server,
    }
    values.update(changes)
    return _Scope(**values)


def _outer(scope: _Scope, **changes: str | None) -> _Scope:
    """The scope inside a subnet or shared-network: what any host there gets, own or not."""
    return _replace(scope, own_filename=None, own_next_server=None, **changes)


def _is_option(words: list[Token], name: str) -> bool:
    return len(words) >= 2 and words[0].text.lower() == "option" and words[1].text.lower() == name


def _address(token: Token, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(token.text)
    except ValueError:
        raise ImportFailure(
            token.where, f"expected an IPv4 address in '{what}', found {token.text!r}"
        ) from None


def parse_tree(path: Path) -> list[Statement]:
    """The statement tree of ``path`` with includes spliced in (relative to its folder)."""
    return _TreeBuilder(path.parent).parse_file(path)


def read_dhcpd_conf(path: Path, sources: Sources) -> None:
    """Add the hosts and subnets of a dhcpd.conf (and its includes) to ``sources``."""
    reader = _Reader(sources)
    reader.walk(parse_tree(path), _Scope(), None)
    sources.subnets.extend(reader.subnets)
    sources.declared_subnets = sources.declared_subnets or bool(reader.subnets)


def declared_hosts(path: Path) -> dict[str, HostRecord]:
    """The ``host`` blocks of a dhcpd.conf (and its includes) by block name.

    For the ``dhcp-omapi`` target: dhcpd reports a host declared in its config
    over OMAPI (name, MAC, address) but not its statements, so a legacy host's
    own ``filename`` and ``next-server`` are read here. Raises ``ImportFailure``.
    """
    sources = Sources()
    _Reader(sources).walk(parse_tree(path), _Scope(), None)
    return {h.dhcp_name: h for h in sources.hosts if h.dhcp_name}
