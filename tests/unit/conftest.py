from tests.unit.site_fixture import site  # noqa: F401 - a fixture shared by the unit tests
from tests.unit.watch_fixture import running, watch_site  # noqa: F401 - fixtures of the watch loop tests
