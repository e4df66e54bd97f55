"""The repository explains itself (issue 18): README, docs/ and the comments
of the code never point outside the repository (a clone has no ../shared),
and every link between the documents leads to a file that exists."""
import os
import re

from conftest import ROOT

OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|\bspec/[a-z_]+\.md|spec §")


def documents():
    yield os.path.join(ROOT, "README.md")
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.endswith(".md"):
            yield os.path.join(ROOT, "docs", name)


def sources():
    for folder, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if name.endswith((".c", ".h")):
                yield os.path.join(folder, name)


def test_nothing_points_outside_the_repository():
    found = []
    for path in list(documents()) + list(sources()):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if OUTSIDE.search(line):
                    found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    assert not found, "\n".join(found)


def test_links_between_documents_resolve():
    broken = []
    for path in documents():
        with open(path) as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                broken.append("%s: %s leaves the repository" % (os.path.relpath(path, ROOT), target))
                continue
            if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), target))):
                broken.append("%s: %s does not exist" % (os.path.relpath(path, ROOT), target))
    assert not broken, "\n".join(broken)


def test_the_documents_the_readme_promises_exist():
    for name in ("architecture.md", "wire-protocol.md", "configuration.md", "migration.md"):
        assert os.path.exists(os.path.join(ROOT, "docs", name)), name
