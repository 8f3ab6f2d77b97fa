"""axe-core in the page: every WCAG 2.0/2.1 A and AA rule, failing with what to fix."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_AXE = """async (tags) => {
  const results = await axe.run(document, { runOnly: { type: "tag", values: tags } });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
  }));
}"""


def axe_violations(page) -> list[dict]:
    """Run axe-core in the page. It is evaluated through the DevTools protocol, which the
    page's Content-Security-Policy does not apply to, so the CSP stays as strict as served."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(RUN_AXE, WCAG_TAGS)


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  how to fix: {violation['helpUrl']}")
        for node in violation["nodes"][:5]:
            lines.append(f"  element {node['target']}: {node['summary']}".replace("\n", " "))
    return "\n".join(lines)
