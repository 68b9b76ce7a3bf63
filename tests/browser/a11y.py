"""Accessibility checks run in the page: every form control is labelled, headings keep their order.

They read what assistive technology reads: a control's name comes from a <label>, aria-label,
aria-labelledby or title; a button's from its text. Problems are returned as readable strings
so a failing assertion says which control or heading on which page.
"""

from __future__ import annotations

import itertools

UNLABELLED_CONTROLS = """
() => {
  const named = (el) => {
    if (el.labels && Array.from(el.labels).some((l) => l.textContent.trim())) return true;
    if ((el.getAttribute("aria-label") || "").trim()) return true;
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    if (ids.some((id) => (document.getElementById(id)?.textContent || "").trim())) return true;
    return !!(el.getAttribute("title") || "").trim();
  };
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    const type = (el.getAttribute("type") || "").toLowerCase();
    if (type === "hidden") continue;
    const describe = `${el.tagName.toLowerCase()}${el.name ? "[name=" + el.name + "]" : ""}${el.id ? "#" + el.id : ""}`;
    if (el.tagName === "BUTTON" || ["submit", "button", "reset"].includes(type)) {
      if (!(el.textContent.trim() || (el.value || "").trim() || named(el))) problems.push(describe + " has no text");
    } else if (!named(el)) {
      problems.push(describe + " has no label");
    }
  }
  return problems;
}
"""

HEADING_LEVELS = """
() => Array.from(document.querySelectorAll("h1, h2, h3, h4, h5, h6"))
  .map((h) => [Number(h.tagName[1]), h.textContent.trim().slice(0, 60)])
"""


def heading_problems(levels: list[list]) -> list[str]:
    problems = []
    if not levels or levels[0][0] != 1:
        problems.append(f"the first heading is not an h1: {levels[:1]}")
    if sum(1 for level, _text in levels if level == 1) != 1:
        problems.append(f"{sum(1 for level, _ in levels if level == 1)} h1 headings, expected one")
    for (before, _), (level, text) in itertools.pairwise(levels):
        if level > before + 1:
            problems.append(f"h{before} is followed by h{level} ({text!r}): a level is skipped")
    return problems


def accessibility_problems(page) -> list[str]:
    """Everything wrong on the page as it is now; an empty list means it passed."""
    where = page.url
    problems = [f"{where}: {problem}" for problem in page.evaluate(UNLABELLED_CONTROLS)]
    problems += [f"{where}: {problem}" for problem in heading_problems(page.evaluate(HEADING_LEVELS))]
    return problems
