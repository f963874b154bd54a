"""The documentation: a short front page, and every relative link in it and in docs/ resolving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINKED = [README, REPO / "BENCHMARKS.md", *DOCS]
SCRIPT_GLOBS = ("benchmarks/**/*.py", "benchmarks/**/*.sh", "deployments/*.yaml", ".ci/*", "Makefile", "prefect.yaml")
SCRIPTS = sorted(
    path
    for pattern in SCRIPT_GLOBS
    for path in REPO.glob(pattern)
    if path.is_file() and "results" not in path.relative_to(REPO).parts
)
DOC_FILES = {"stages", "configuration", "operations", "bad-input", "fidelity", "lfw", "development"}

FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work/|root/|home/\w+/|tmp/\w)")  # a machine's or a session's


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_ ").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes in a Markdown file (repeated headings get -1, -2, ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The link targets of a Markdown file, outside code."""
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += LINK.findall(INLINE_CODE.sub("", line))
    return targets


def broken_links(path: Path) -> list[str]:
    """Relative links of `path` whose file, or whose #fragment in a Markdown file, does not exist."""
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto:
        file_part, _, fragment = target.partition("#")
        if file_part.startswith("/"):
            broken.append(f"{target} (absolute: make it relative)")
            continue
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_relative_to(REPO) or not linked.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target} (no heading with anchor #{fragment})")
    return broken


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    for name in DOC_FILES:
        assert f"(docs/{name}.md)" in text, f"README.md does not link docs/{name}.md"


def test_the_docs_files_exist():
    assert {path.stem for path in DOCS} >= DOC_FILES


@pytest.mark.parametrize("path", LINKED, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("path", LINKED + SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_no_machine_specific_paths(path):
    hits = [line for line in path.read_text(encoding="utf-8").splitlines() if MACHINE_PATH.search(line)]
    assert hits == []


def test_slugs_follow_github():
    assert slug("Datasets: `facenet download` and the catalogue") == "datasets-facenet-download-and-the-catalogue"
    assert slug("Tracking and the model registry (MLflow)") == "tracking-and-the-model-registry-mlflow"
    assert slug("glint360k: the seed's crop, what it costs") == "glint360k-the-seeds-crop-what-it-costs"
    assert slug("Real data: LFW View 1") == "real-data-lfw-view-1"


def test_broken_links_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Top\n\n## Same\n\n## Same\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](docs/a.md#same-1) [self](#local) [web](https://example.org/x)\n\n## Local\n\n"
        "[gone](docs/b.md) [bad](docs/a.md#same-2) [abs](/etc/passwd) [out](../x.md)\n\n"
        "```\n[in code](nowhere.md)\n```\n`[inline](nowhere.md)`\n"
    )
    assert broken_links(page) == [
        "docs/b.md (no such file)",
        "docs/a.md#same-2 (no heading with anchor #same-2)",
        "/etc/passwd (absolute: make it relative)",
        "../x.md (no such file)",
    ]
