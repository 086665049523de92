"""The documentation: every reference resolves inside the repository, the README's API snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
# Where code, help text and prose point readers at the documentation.
SCANNED = [
    *sorted((REPO / "reranker").rglob("*.py")),
    *sorted((REPO / "reranker").rglob("*.md")),
    *sorted((REPO / "dashboard").rglob("*.py")),
    *sorted((REPO / "benchmarks").glob("*.py")),
    *sorted((REPO / "tests").rglob("*.py")),
    *sorted((REPO / "tests").rglob("*.md")),
    REPO / "README.md",
    REPO / "demo_data" / "README.md",
    *sorted(DOCS.glob("*.md")),
]
DOC_REFERENCE = re.compile(r"\bdocs/([\w.-]+\.md)(?:#([\w-]+))?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]*)(?:#([^)\s]+))?\)")
# The name of a contract document that is not in the repository ("SPEC §5", "SPEC's tie-break").
OUTSIDE_CONTRACT = re.compile(r"\bSPEC\b")


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(m) for m in re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE)}


def _references(path: Path) -> list[tuple[Path, str | None]]:
    """Every documentation file (and anchor) the file at ``path`` points to."""
    text = path.read_text(encoding="utf-8")
    found = [(REPO / "docs" / name, anchor) for name, anchor in DOC_REFERENCE.findall(text)]
    if path.suffix == ".md":
        for target, anchor in MARKDOWN_LINK.findall(text):
            if "://" in target:
                continue
            found.append((path if not target else (path.parent / target).resolve(), anchor or None))
    return found


def test_the_documentation_exists() -> None:
    for name in ("README.md", "formats.md", "metrics.md", "features.md", "losses.md", "cli.md"):
        assert (DOCS / name).is_file(), name


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(REPO)))
def test_documentation_references_resolve(path: Path) -> None:
    for target, anchor in _references(path):
        assert target.exists(), f"{path.relative_to(REPO)} refers to missing {target}"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), (
                f"{path.relative_to(REPO)} refers to {target.name}#{anchor}, no such heading"
            )


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(REPO)))
def test_no_reference_to_a_contract_outside_the_repository(path: Path) -> None:
    if path == Path(__file__):
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        assert not OUTSIDE_CONTRACT.search(line), f"{path.relative_to(REPO)}:{number}: {line}"


def test_references_are_found() -> None:
    """The scan sees the kinds of reference the code uses (guards against a broken pattern)."""
    sample = REPO / "README.md"
    targets = {t.name for t, _ in _references(sample)}
    assert {"README.md", "formats.md"} <= targets
    assert _slug("Smooth ECE") == "smooth-ece" and _slug("Top-1") == "top-1"
    assert OUTSIDE_CONTRACT.search("see SPEC §5") and OUTSIDE_CONTRACT.search("SPEC's tie-break")
    assert not OUTSIDE_CONTRACT.search("_MARKDOWN_SPECIAL")


def _readme_python_api() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "README.md: no python block under '## Python API'"
    return match.group(1)


def test_readme_python_api_snippet_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(_readme_python_api(), "README.md (Python API)", "exec"), namespace)
    report = namespace["report"]
    assert isinstance(report, dict) and set(report["intervals"]) >= {"ece", "top1_semer"}
    low, high = report["intervals"]["ece"]
    assert low <= report["ece"] <= high
    assert capsys.readouterr().out.strip()
