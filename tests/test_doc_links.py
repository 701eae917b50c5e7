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
