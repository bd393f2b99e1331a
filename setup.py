"""Packaging for clinit, the Python successor of Perl's Cluster::Init."""

import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def man_pages():
    """The roff pages under man/, installed once they exist."""
    pages = {"man5": [], "man8": []}
    mandir = os.path.join(HERE, "man")
    if os.path.isdir(mandir):
        for name in sorted(os.listdir(mandir)):
            section = "man" + name.rsplit(".", 1)[-1]
            if section in pages:
                pages[section].append(os.path.join("man", name))
    return [("share/man/" + section, files) for section, files in pages.items() if files]


def shared_files(folder, target):
    """The files directly under ``folder``, installed to share/clinit/``target``."""
    path = os.path.join(HERE, folder)
    if not os.path.isdir(path):
        return []
    files = sorted(
        os.path.join(folder, name)
        for name in os.listdir(path)
        if os.path.isfile(os.path.join(path, name))
    )
    return [("share/clinit/" + target, files)] if files else []


setup(
    name="clinit",
    version="0.4.0",
    description="Cluster-wide application-level init: a drop-in successor of Perl's Cluster::Init",
    long_description=open(os.path.join(HERE, "README"), encoding="utf-8").read(),
    long_description_content_type="text/plain",
    license="GPL-1.0-or-later OR Artistic-1.0-Perl",
    python_requires=">=3.9",
    package_dir={"": "lib"},
    packages=["cluster_init"],
    scripts=["clinit"],
    data_files=man_pages() + shared_files("contrib", "contrib") + shared_files("ocf", "ocf"),
    install_requires=["python-daemon>=2.2", "lockfile>=0.12"],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2.1", "hypothesis>=6"],
        "bench": ["supervisor>=4"],
    },
    classifiers=[
        "Environment :: No Input/Output (Daemon)",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Boot :: Init",
        "Topic :: System :: Clustering",
    ],
)
