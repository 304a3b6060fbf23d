"""Loading and validation, file by file: parsing, schema, names, images, the whole report."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.model.problems import InventoryError
from tests.unit.inventory_factory import (
    BASE_GROUP,
    SHA,
    assert_problem,
    group,
    image,
    load,
    only_problem,
    position,
    problems,
    write_inventory,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
GROUP = "groups/compute.yaml"


def test_base_site_is_valid(tmp_path: Path) -> None:
    inventory = load(write_inventory(tmp_path))
    assert [g.name for g in inventory.groups] == ["compute"]
    assert inventory.revision == "working-tree"


def test_example_inventory_is_valid() -> None:
    inventory = load(EXAMPLE, boot_profiles=frozenset({"default", "discovery", "local"}))
    assert inventory.site.domain == "cluster.example"
    assert [g.name for g in inventory.groups] == ["compute", "gpu", "service"]
    compute = inventory.groups[0]
    assert compute.hosts[3].mac == "52:54:00:12:34:0d"  # written 52-54-00-12-34-0D
    assert compute.registration is not None and compute.registration.indexes == (21, 40)
    assert set(inventory.images["compute"].versions) == {"2024.10", "2024.11"}


def test_yaml_that_does_not_parse(tmp_path: Path) -> None:
    text = "name: compute\nsubnet: 10.23.45.0/24\nhosts: [\n  {index: 1\n"
    problem = only_problem(write_inventory(tmp_path, groups={"compute": text}))
    assert_problem(problem, file=GROUP, at=(5, 1), field="", says=("not valid YAML",))


def test_unknown_key_is_a_typo_caught(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(gatway="10.23.45.1")})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "10.23.45.1", occurrence=2),
        field="gatway",
        says=("unknown key 'gatway'", "fix its spelling"),
    )


def test_unknown_key_in_a_host(tmp_path: Path) -> None:
    hosts = [{"index": 10, "mac": "52:54:00:00:00:0a", "alias": ["x"]}]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts)})
    problem = only_problem(root)
    line, _ = position(root, GROUP, "alias:")
    assert_problem(problem, file=GROUP, at=(line, 3), field="hosts[0].alias", says=("'alias'",))


def test_unknown_key_in_site_yaml(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, site="domain: cluster.example\nttl: 300\nleasetime: 60\n")
    problem = only_problem(root)
    assert_problem(problem, file="site.yaml", at=(3, 12), field="leasetime", says=("unknown key",))


@pytest.mark.parametrize(
    ("line", "field", "hint"),
    [
        ("index: '20'", "hosts[0].index", "whole number without quotes"),
        ("index: 20.0", "hosts[0].index", "whole number"),
        ("index: true", "hosts[0].index", "whole number"),
        ("index: -1", "hosts[0].index", "greater than or equal to 0"),
        ("mac: 525400000010", "hosts[0].mac", "quoted string"),
        ("aliases: login", "hosts[0].aliases", "write a list"),
    ],
)
def test_wrong_type_in_a_host(tmp_path: Path, line: str, field: str, hint: str) -> None:
    key = line.split(":")[0]
    entry = {"index": "index: 20", "mac": 'mac: "52:54:00:00:00:14"', key: line}
    text = (
        "name: compute\nsubnet: 10.23.45.0/24\ngateway: 10.23.45.1\nhostname: node%03d\n"
        "hosts:\n"
        f"  - {entry['index']}\n"
        f"    {entry['mac']}\n" + (f"    {line}\n" if key not in ("index", "mac") else "")
    )
    root = write_inventory(tmp_path, groups={"compute": text})
    problem = only_problem(root)
    value = line.split(": ", 1)[1]
    assert_problem(problem, file=GROUP, at=position(root, GROUP, value), field=field, says=(hint,))


@pytest.mark.parametrize(
    ("site", "field", "hint"),
    [
        ("domain: cluster.example\nttl: '300'\n", "ttl", "whole number"),
        ("domain: cluster.example\nttl: 0\n", "ttl", "greater than or equal to 1"),
        ("domain: 42\n", "domain", "double quotes"),
        ("domain: Cluster_Example\n", "domain", "not a valid domain"),
        ('domain: "cluster.example\\n"\n', "domain", "not a valid domain"),
    ],
)
def test_wrong_site_values(tmp_path: Path, site: str, field: str, hint: str) -> None:
    problem = only_problem(write_inventory(tmp_path, site=site))
    line = site.count("\n", 0, site.index(f"{field}:")) + 1
    assert_problem(problem, file="site.yaml", at=(line, len(field) + 3), field=field, says=(hint,))


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"subnet": "10.23.45.7/24"}, "subnet", "no host bits"),
        ({"gateway": "10.23.45.300"}, "gateway", "IPv4 address"),
        ({"registration": {"open": "yes", "indexes": "21-40"}}, "registration.open", "true or"),
        ({"registration": {"indexes": "40-21"}}, "registration.indexes", 'write "21-40"'),
        ({"unregistered_range": "10.23.45.250-10.23.45.200"}, "unregistered_range", "lower"),
        ({"hosts": {"index": 1}}, "hosts", "write a list"),
        ({"image": "compute"}, "image", "<image name>@<version>"),
    ],
)  # fmt: skip
def test_wrong_group_values(
    tmp_path: Path, changes: dict[str, object], field: str, hint: str
) -> None:
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(**changes)}))
    assert_problem(problem, file=GROUP, at=None, field=field, says=(hint,))
    assert problem.line is not None and problem.line > 1


def test_missing_required_key_points_at_the_mapping(tmp_path: Path) -> None:
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(gateway=None)}))
    assert_problem(
        problem, file=GROUP, at=(1, 1), field="", says=("required key 'gateway' is missing",)
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [("# nothing yet\n", "the file is empty"), ("- name: compute\n", "not a list")],
)
def test_group_file_that_is_not_a_mapping(tmp_path: Path, text: str, says: str) -> None:
    problem = only_problem(write_inventory(tmp_path, groups={"compute": text}))
    assert_problem(problem, file=GROUP, at=(1, 1), field="", says=(says,))


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = "name: compute\nsubnet: 10.23.45.0/24\ngateway: 10.23.45.1\nsubnet: 10.9.0.0/16\n"
    problem = only_problem(write_inventory(tmp_path, groups={"compute": text}))
    assert_problem(
        problem, file=GROUP, at=(4, 1), field="", says=("'subnet' appears twice", "line 2")
    )


def test_unquoted_mac_and_leading_zero_index_mean_what_they_say(tmp_path: Path) -> None:
    text = (
        "name: compute\nsubnet: 10.23.45.0/24\ngateway: 10.23.45.1\nhostname: node%03d\n"
        "hosts:\n  - index: 020\n    mac: 52:54:00:12:34:14\n"
    )
    inventory = load(write_inventory(tmp_path, groups={"compute": text}))
    (host,) = inventory.groups[0].hosts
    assert host.index == 20  # not octal 16
    assert host.mac == "52:54:00:12:34:14"  # not a base-60 integer
    assert inventory.groups[0].hostname_of(host.index) == "node020"


def test_group_name_differs_from_file_name(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(name="gpu")})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "gpu"),
        field="name",
        says=("'gpu'", "file name 'compute'", "rename the file or change the name"),
    )


def test_image_name_differs_from_file_name(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, images={"compute": None, "base": image("compute")})
    problem = only_problem(root)
    assert_problem(problem, file="images/base.yaml", at=(1, 7), field="name", says=("'base'",))


def test_missing_site_yaml(tmp_path: Path) -> None:
    problem = only_problem(write_inventory(tmp_path, site=None))
    assert_problem(problem, file="site.yaml", at=None, field="", says=("missing", "domain:"))


def test_yml_extension_is_refused(tmp_path: Path) -> None:
    root = write_inventory(
        tmp_path, groups={"compute": None}, files={"groups/compute.yml": "name: compute\n"}
    )
    problem = only_problem(root)
    assert_problem(
        problem, file="groups/compute.yml", at=None, field="", says=("end in .yaml", "rename")
    )


def test_site_yml_reports_both_the_extension_and_the_missing_site(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, site=None, files={"site.yml": "domain: cluster.example\n"})
    assert sorted(p.file for p in problems(root)) == ["site.yaml", "site.yml"]


def test_image_missing(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(image="rocky@9")})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "rocky@9"),
        field="image",
        says=("image 'rocky' does not exist", "known: compute", "add images/rocky.yaml"),
    )


def test_image_version_missing(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(image="compute@2023.01")})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "compute@2023.01"),
        field="image",
        says=("no version '2023.01'", "2024.10, 2024.11"),
    )


def test_host_image_override_missing(tmp_path: Path) -> None:
    hosts = [{"index": 10, "mac": "52:54:00:00:00:0a", "image": "compute@9"}]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "compute@9"),
        field="hosts[0].image",
        says=("no version '9'",),
    )


@pytest.mark.parametrize(
    "sha",
    [
        SHA["kernel"][:63],
        SHA["kernel"] + "0",
        SHA["kernel"].upper(),
        "z" * 64,
        SHA["kernel"] + "\n",
    ],
)
def test_sha256_not_64_hex(tmp_path: Path, sha: str) -> None:
    data = image()
    data["versions"]["2024.11"]["initrd"]["sha256"] = sha
    root = write_inventory(tmp_path, images={"compute": data})
    problem = only_problem(root)  # the groups' references to it are not reported again
    assert_problem(
        problem,
        file="images/compute.yaml",
        at=None,
        field="versions.2024.11.initrd.sha256",
        says=("64 lower-case hex digits",),
    )
    assert problem.line == position(root, "images/compute.yaml", "sha256", occurrence=5)[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("url", "http://boot/vmlinuz\nimgfetch evil"), ("url", "ftp://boot/x"), ("cmdline", 'a"b')],
)
def test_boot_values_that_would_break_boot_files(tmp_path: Path, field: str, value: str) -> None:
    data = image()
    if field == "url":
        data["versions"]["2024.10"]["kernel"]["url"] = value
    else:
        data["versions"]["2024.10"]["cmdline"] = value
    problem = only_problem(write_inventory(tmp_path, images={"compute": data}))
    assert problem.file == "images/compute.yaml"
    assert problem.field.startswith("versions.2024.10.")


def test_unquoted_version_key_is_refused(tmp_path: Path) -> None:
    text = "name: compute\nversions:\n  2024.10: {}\n"
    found = problems(write_inventory(tmp_path, images={"compute": text}))
    key = [p for p in found if "YAML reads this key" in p.message]
    assert len(key) == 1, found
    assert_problem(
        key[0],
        file="images/compute.yaml",
        at=(3, 12),
        field="versions.2024.1",
        says=("as float 2024.1", 'double quotes exactly as meant, such as "2024.10"'),
    )


def test_unknown_boot_profile(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(boot="netboot")})
    assert load(root).groups[0].boot == "netboot"  # not checked without a profile list
    problem = only_problem(root, boot_profiles=frozenset({"default", "discovery", "local"}))
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "netboot"),
        field="boot",
        says=("'netboot'", "default, discovery, local", "templates/boot/netboot/"),
    )


def test_all_problems_of_one_file_are_reported_together(tmp_path: Path) -> None:
    hosts = [
        {"index": 10, "mac": "52:54:00:00:00:0a"},
        {"index": 10, "mac": "52:54:00:00:00:0b"},
        {"index": 12, "mac": "52:54:00:00:00:0a"},
    ]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts, gateway="10.9.9.1")})
    found = problems(root)
    # gateway outside the subnet; index 10 twice (reported once, not again as a
    # duplicate hostname and address); MAC twice
    assert [p.field for p in found] == ["gateway", "hosts[1].index", "hosts[2].mac"]
    assert "index 10 is used twice" in found[1].message


def test_three_problems_in_one_file_give_three(tmp_path: Path) -> None:
    text = (
        "name: compute\n"
        "subnet: 10.23.45.0/24\n"
        "gateway: 10.23.45.1\n"
        "hostname: Node%d\n"  # upper case
        "colour: blue\n"  # unknown key
        "hosts:\n"
        "  - index: 1\n"
        "    mac: 52:54:00:00:00\n"  # 5 octets
    )
    found = problems(write_inventory(tmp_path, groups={"compute": text}))
    assert [(p.line, p.field) for p in found] == [
        (4, "hostname"),
        (5, "colour"),
        (8, "hosts[0].mac"),
    ]


def test_problems_in_two_files_are_both_reported(tmp_path: Path) -> None:
    gpu = group(
        name="gpu", subnet="10.23.46.0/24", gateway="10.23.46.1", hostname="gpu%02d",
        unregistered_range=None, hosts=[{"index": 1, "mac": "52:54:00:00:00:0a"}],
    )  # fmt: skip
    root = write_inventory(
        tmp_path,
        site="domain: cluster.example\nttl: -5\n",
        groups={"gpu": gpu, "compute": group(image="compute@1999")},
    )
    found = problems(root)
    assert sorted({p.file for p in found}) == [GROUP, "groups/gpu.yaml", "site.yaml"]
    # site.yaml being invalid does not hide the site-wide rules: the duplicate MAC shows
    assert any("already used" in p.message and p.file == "groups/gpu.yaml" for p in found)


def test_error_message_lists_every_problem(tmp_path: Path) -> None:
    root = write_inventory(
        tmp_path, groups={"compute": group(image="x@1", name="other", gateway="10.23.45.0")}
    )
    with pytest.raises(InventoryError) as caught:
        load(root)
    text = str(caught.value)
    assert text.startswith("inventory is invalid (3 problems):")
    assert text.count(f"\n  {GROUP}:") == 3


def test_a_host_left_out_of_the_base_keeps_the_rest_valid(tmp_path: Path) -> None:
    hosts = BASE_GROUP["hosts"][:1]
    inventory = load(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert [h.index for h in inventory.groups[0].hosts] == [10]
