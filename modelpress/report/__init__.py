"""Reports: render the JSON results of compress / convert / deploy runs as Markdown and HTML with plots.

    from modelpress.report import render_report
    paths = render_report("runs/demo")     # runs/demo/report/{report.md, report.html, *.png}
"""

from modelpress.report.render import render_report

__all__ = ["render_report"]
