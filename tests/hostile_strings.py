"""Strings a user can put where the product expects names: shared by the CLI and dashboard fuzzing.

Markdown and HTML that would fetch, link or format if rendered, path tricks, control and
bidirectional characters, non-ASCII digits and very long values.
"""

from __future__ import annotations

from hypothesis import strategies as st

NASTY: tuple[str, ...] = (
    "![pixel](http://example.invalid/pixel.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**bold** _it_ `code`",
    ":red[alert] :material/error:",
    "$$x^2$$",
    "# Heading",
    "a\nb",
    "\x1b[31mred",
    "..",
    "a/b",
    "a\\b",
    "\u202eevil",
    "٣",
    "x" * 300,
    "nul\x00byte",
)

# Characters that carry meaning in Markdown or HTML: a string holding one of them must never be
# found verbatim inside a Markdown element.
MARKUP = frozenset("[]()<>*_`#:$|!~\\")

hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40),
)
"""Any string, weighted towards the hostile ones."""

markup_text = st.one_of(
    st.sampled_from([s for s in NASTY if MARKUP & set(s) and "\x00" not in s]),
    st.builds(
        lambda a, m, b: f"{a}{m}{b}",
        st.text(st.characters(categories=("L", "N")), min_size=1, max_size=8),
        st.sampled_from(
            ["![i](http://example.invalid/i.png)", "**b**", "<b>x</b>", "[l](u)", "`c`"]
        ),
        st.text(st.characters(categories=("L", "N")), max_size=8),
    ),
)
"""Strings that Markdown or HTML would render differently from their text."""
