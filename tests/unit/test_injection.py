"""Values pasted into iPXE, pxelinux and dhcpd.conf cannot carry commands of their own.

An image's kernel command line, its URLs, and the runtime config's boot URL,
TFTP server and include path are refused when they hold something another
language would read as syntax; harmless values still render exactly as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.compile import CompileOptions, compile_inventory, ipxe_path, pxelinux_path
from reconciler.config import ConfigError, load_config
from tests.unit.inventory_factory import image, load, only_problem, position, write_inventory

IMAGES = "images/compute.yaml"
MAC = "52:54:00:00:00:0a"


@pytest.mark.parametrize(
    ("cmdline", "says"),
    [
        ("quiet || shell", "'||'"),
        ("quiet && shell", "'&&'"),
        ("quiet ; shell", "';'"),
        ("quiet;shell", "';'"),
        ("quiet #shell", "'#'"),
        ("quiet\nshell", "'\\n'"),
        ("root=${root-path}", "'${'"),
        ("quiet `reboot`", "'`'"),
        ("quiet 'x'", '"\'"'),
        ("quiet <x >y", "'<', '>'"),
        ("quiet||shell", "'||'"),
        ("quiet&&shell", "'&&'"),
        ("quiet\\nshell", "'\\\\'"),
        ("a" * 1025, "under 1024"),
    ],
)
def test_command_lines_that_would_inject_are_refused_with_their_line(
    tmp_path: Path, cmdline: str, says: str
) -> None:
    data = image()
    data["versions"]["2024.10"]["cmdline"] = cmdline
    root = write_inventory(tmp_path, images={"compute": data})
    problem = only_problem(root)
    text = str(problem)
    assert problem.file == IMAGES and problem.field == "versions.2024.10.cmdline", text
    # The line of the value (YAML may write a long one over several lines).
    assert problem.line == position(root, IMAGES, "cmdline")[0], text
    assert text.startswith(f"{IMAGES}:{problem.line}:"), text
    assert says in text, text


@pytest.mark.parametrize(
    "url",
    [
        "http://boot/${net0/mac}/vmlinuz",
        'http://boot/vmlinuz"',
        "http://boot/a b",
        "http://boot/vmlinuz\\x",
        "http://boot/{x}",
        "http://boot/a|b",
        "http:///vmlinuz",
        "http://boot/vmlinuz\nkernel http://evil/x",
    ],
)
def test_urls_that_would_inject_are_refused(tmp_path: Path, url: str) -> None:
    data = image()
    data["versions"]["2024.10"]["rootfs"]["url"] = url
    root = write_inventory(tmp_path, images={"compute": data})
    problem = only_problem(root)
    assert problem.field == "versions.2024.10.rootfs.url", str(problem)
    assert problem.line is not None


HARMLESS = (
    "console=ttyS0,115200n8 quiet root=UUID=0f3a-11 rd.break=pre-mount isolcpus=1-3 "
    "memmap=64M$0x10000000 systemd.unit=multi-user.target crashkernel=512M-2G:64M "
    "modprobe.blacklist=nouveau,radeon intel_iommu=on init=/sbin/init a|b x&y"
)


def test_harmless_command_lines_render_as_written(tmp_path: Path) -> None:
    data = image()
    data["versions"]["2024.10"]["cmdline"] = HARMLESS
    data["versions"]["2024.10"]["kernel"]["url"] = "https://boot.example:8443/k?v=1&arch=x86_64"
    inventory = load(write_inventory(tmp_path, images={"compute": data}))
    state = compile_inventory(inventory, options=CompileOptions(http_url="http://boot:8080"))
    files = {f.path: f.content for f in state.boot_files}
    ipxe_lines = files[ipxe_path(MAC)].splitlines()
    kernel = next(line for line in ipxe_lines if line.startswith("kernel "))
    assert kernel.startswith(
        f"kernel https://boot.example:8443/k?v=1&arch=x86_64 initrd=initrd.img {HARMLESS} "
        "hostname=node010 "
    )
    append = next(
        line.strip() for line in files[pxelinux_path(MAC)].splitlines() if "APPEND" in line
    )
    assert append.startswith(f"APPEND {HARMLESS} hostname=node010 ")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reconciler.toml"
    path.write_text('[source]\npath = "inventory"\n' + text)
    return path


@pytest.mark.parametrize(
    ("boot", "key", "says"),
    [
        ('http_url = "http://10.0.0.2:8080/${x}"', "boot.http_url", "'${'"),
        ('http_url = "http://10.0.0.2:8080/\\";\\nfilename \\"x"', "boot.http_url", "'\"'"),
        ('http_url = "http://10.0.0.2:8080/a b"', "boot.http_url", "' '"),
        ('http_url = "http://10.0.0.2:8080/?x=1"', "boot.http_url", "query"),
        ('http_url = "http://u:p@10.0.0.2:8080"', "boot.http_url", "password"),
        ('http_url = "ftp://10.0.0.2"', "boot.http_url", "http://"),
        ('tftp_server = "10.0.0.2; filename \\"evil\\""', "boot.tftp_server", "next-server"),
        ('tftp_server = "10.0.0.2\\n"', "boot.tftp_server", "next-server"),
    ],
)
def test_boot_settings_that_would_inject_are_refused_at_load(
    tmp_path: Path, boot: str, key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, f"[boot]\n{boot}\n"))
    message = str(caught.value)
    assert key in message and says in message, message


def test_good_boot_settings_load(tmp_path: Path) -> None:
    config = load_config(
        _config(
            tmp_path,
            '[boot]\nhttp_url = "https://boot.cluster.example:8443/pxe"\n'
            'tftp_server = "boot.cluster.example"\n',
        )
    )
    assert config.boot.http_url == "https://boot.cluster.example:8443/pxe"
    assert config.boot.tftp_server == "boot.cluster.example"


def test_dhcp_conf_include_path_with_a_quote_is_refused(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '[targets.dhcp]\ntype = "dhcp-conf"\npath = "dhcpd.conf"\nomapi_port = 7911\n'
        'omapi_key_file = "k"\nrestart_command = "true"\ninclude = \'hosts"; deny booting; #\'\n',
    )
    with pytest.raises(ConfigError, match=r"targets\.dhcp\.include.*double quote"):
        load_config(path)  # refused when the config is loaded, before any target is built
