from tests.unit.lab.apilab import apilab  # noqa: F401 - a fixture for this package's tests
from tests.unit.lab.kubelet_harness import stop_all  # noqa: F401 - a fixture for the kubelet's tests
