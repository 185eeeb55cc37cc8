from tests.unit.lab.apilab import apilab  # noqa: F401 - a fixture for this package's tests
