"""One version: every place that states clinit's version agrees with ``clinit --version``.

The places: setup.py, lib/cluster_init/version.py, the .TH headers of
both man pages, the OCF agent's meta-data (<resource-agent version=...>)
and debian/changelog's latest entry (its upstream part, before the
Debian revision).  Nothing is built or installed: each is read from the
checkout, and ``clinit --version`` is the checkout's command.
"""

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def path(*parts):
    return os.path.join(CHECKOUT, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as stream:
        return stream.read()


@pytest.fixture(scope="module")
def version():
    """What ``clinit --version`` says: ``clinit X.Y.Z``."""
    result = subprocess.run(
        [sys.executable, path("clinit"), "--version"], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"clinit (\d+(?:\.\d+)+)\n", result.stdout)
    assert match, f"clinit --version printed {result.stdout!r}"
    return match.group(1)


def keyword_of_setup_call(name):
    """The literal value of keyword ``name`` in setup.py's setup(...) call."""
    for node in ast.walk(ast.parse(read("setup.py"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == name:
                    return ast.literal_eval(keyword.value)
    raise AssertionError(f"setup.py's setup() has no literal {name}=")


def test_setup_py(version):
    assert keyword_of_setup_call("version") == version


def test_version_py(version):
    tree = ast.parse(read("lib", "cluster_init", "version.py"))
    found = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["VERSION"]
    ]
    assert found == [version]


@pytest.mark.parametrize("page", ["clinit.8", "cltab.5"])
def test_man_page_header(version, page):
    header = next(line for line in read("man", page).splitlines() if line.startswith(".TH "))
    fields = re.findall(r'"([^"]*)"|(\S+)', header[4:])
    words = [quoted or bare for quoted, bare in fields]
    # .TH TITLE SECTION DATE SOURCE MANUAL: the source is "clinit X.Y.Z"
    assert len(words) >= 4 and words[3] == f"clinit {version}", header


def test_ocf_agent_meta_data(version):
    result = subprocess.run(
        ["sh", path("ocf", "clinit"), "meta-data"], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, OCF_ROOT="/nonexistent"),
    )
    assert result.returncode == 0, result.stderr
    agent = ElementTree.fromstring(result.stdout.split("\n", 1)[1])  # after <?xml ...?>
    assert agent.tag == "resource-agent"
    assert agent.get("version") == version


def test_debian_changelog(version):
    first = read("debian", "changelog").splitlines()[0]
    match = re.match(r"clinit \(((?:\d+:)?([^-\s)]+)(?:-[^\s)]+)?)\) ", first)
    assert match, f"debian/changelog starts {first!r}"
    assert match.group(2) == version, (
        f"debian/changelog's latest entry is {match.group(1)}; clinit --version says {version}"
    )
