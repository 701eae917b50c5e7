"""The docs' links between pages and to files of the checkout lead somewhere."""

from __future__ import annotations

import re

from support.docs import CLI_REFERENCE, ROOT, pages


def test_every_link_between_pages_leads_to_a_file():
    """README.md and docs/ link to each other and to files in the checkout; a page renamed or not yet
    written shows up here rather than as a reader's 404."""
    missing = []
    for page in [*pages(), CLI_REFERENCE]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)


def anchors(text: str) -> set[str]:
    """The fragments a page answers to: its headings as GitHub slugs them (lower case, punctuation dropped,
    spaces to hyphens, a repeated heading numbered), and its ``<a id="...">`` anchors."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found, seen = set(re.findall(r'<a id="([^"]+)"', text)), {}
    for heading in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", re.sub(r"<[^>]+>", "", heading).strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def test_every_link_to_a_section_finds_that_section():
    """A link to a page's section (`design.md#memory`) finds the heading or anchor: a heading reworded or a
    section moved shows up here, not as a link that lands at the top of the page."""
    missing = []
    for page in [*pages(), CLI_REFERENCE]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target, fragment in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text):
            linked = page.parent / target if target else page
            if linked.suffix == ".md" and linked.exists() and fragment not in anchors(linked.read_text()):
                missing.append(f"{page.relative_to(ROOT)} -> {target}#{fragment}")
    assert len(re.findall(r"\]\([^)\s]*#", "".join(p.read_text() for p in pages()))) >= 5  # the check has work
    assert not missing, "links to sections that do not exist:\n" + "\n".join(missing)
