"""The care guide page the cards link to: accessible HTML, one anchor per section, no script, strict CSP."""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from markdown_it import MarkdownIt
from markupsafe import Markup

from cds_service.errors import ClientError
from cds_service.http.context import current_runtime

blueprint = Blueprint(
    "guides", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)
# html=False: any raw HTML in content is shown as text, never rendered.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
}


def render_markdown(text: str) -> Markup:
    return Markup(_markdown.render(text))


@blueprint.get("/guides/<guide_id>")
def guide(guide_id: str) -> Response:
    knowledge = current_runtime().knowledge
    if guide_id != knowledge.guide.id:
        raise ClientError(404, f"no guide with id '{guide_id}'", where="guide_id", code="not-found")
    page = knowledge.guide
    sections = [{"id": s["id"], "title": s["title"], "html": render_markdown(s["body"])} for s in page.sections]
    html = render_template("guide.html", guide=page, sections=sections)
    return Response(html, mimetype="text/html", headers=SECURITY_HEADERS)
