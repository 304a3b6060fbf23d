from site_fixture import site  # noqa: F401 - a fixture shared by the unit tests
