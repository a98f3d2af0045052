"""README.md and docs/: short enough to read, every link and every repository path they name exists."""

import re

import pytest

from tests.conftest import REPO_ROOT

PAGES = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
# Written by `make report` from the runs' own files, so absent from a fresh clone.
GENERATED = {REPO_ROOT / "docs" / "results.md", REPO_ROOT / "docs" / "app"}
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
REPOSITORY_PATH = re.compile(r"(?<![\w./-])((?:tf_models|pipelines|scripts|tests|docs|\.ci)/[\w./-]*[\w/])")
DEVELOPMENT_WORDS = re.compile(r"this stop|last stop|earlier stops|the issue|agreed design|this session|"
                               r"earlier machine|this machine", re.IGNORECASE)


def page_id(path):
    return str(path.relative_to(REPO_ROOT))


def test_readme_is_at_most_200_lines_and_keeps_the_two_commands():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_points_at_a_file(page):
    for target in LINK.findall(page.read_text()):
        if "://" in target:
            continue
        path = (page.parent / target).resolve()
        assert path.exists() or path in GENERATED, f"{page_id(page)} links to missing {target}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_repository_path_named_exists(page):
    for name in REPOSITORY_PATH.findall(page.read_text()):
        if "<" in name or "*" in name:
            continue
        path = REPO_ROOT / name
        assert path.exists() or path in GENERATED, f"{page_id(page)} names missing {name}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_pages_speak_of_the_product(page):
    assert not DEVELOPMENT_WORDS.search(page.read_text()), page_id(page)
