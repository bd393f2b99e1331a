"""Port of 01_ini.t: the library imports."""

import importlib

import pytest

MODULES = ["states", "errors", "cltab", "sysapi", "machine", "registry", "process", "group"]


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    module = importlib.import_module("cluster_init." + name)
    assert module.__doc__, f"cluster_init.{name} has no docstring"


def test_package_exports_its_errors():
    import cluster_init

    assert issubclass(cluster_init.CltabError, cluster_init.Error)
    assert issubclass(cluster_init.DaemonError, cluster_init.Error)
    assert cluster_init.__version__


def test_states_do_not_import_anything_of_ours():
    import cluster_init.states as states

    source = open(states.__file__, encoding="utf-8").read()
    assert "from ." not in source and "import cluster_init" not in source
