"""The HTML compatibility report: the page's data (model.py, verdicts.py), rendered with Jinja2 (html.py)."""
