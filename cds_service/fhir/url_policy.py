"""Which outbound URLs the service may call: https only (plain http only to loopback, when explicitly allowed),
and a URL is "under" a configured prefix only on the same origin and at a path-segment boundary."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORTS = {"https": 443, "http": 80}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in, so that https://h and https://h:443 compare equal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        return scheme, "", -1
    return scheme, (parts.hostname or "").lower(), port if port is not None else DEFAULT_PORTS.get(scheme)


def scheme_problem(url: str, allow_http_loopback: bool) -> str | None:
    """Why this URL may not be called at all (None when it may)."""
    scheme, host, port = origin(url)
    if not host or port == -1:
        return "is not an absolute URL with a host"
    if scheme == "https":
        return None
    if scheme == "http" and host in LOOPBACK_HOSTS:
        return None if allow_http_loopback else "uses plain http (loopback only, with CDS_ALLOW_HTTP_LOOPBACK=1)"
    return "must use https"


def base_url_problem(url: str, allow_http_loopback: bool) -> str | None:
    """Why a configured base URL / prefix is unusable (None when it is fine)."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return "must not carry user info"
    if parts.query or parts.fragment or "\\" in url:
        return "must not have a query, a fragment or a backslash"
    return scheme_problem(url, allow_http_loopback)


def _has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


def is_under(url: str, prefix: str) -> bool:
    """True when `url` is on the origin of `prefix` and its path is the prefix's path or below it."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or "\\" in url or _has_dot_segment(parts.path):
        return False
    if origin(url) != origin(prefix) or not origin(url)[1]:
        return False
    base = urlsplit(prefix).path.rstrip("/")
    return parts.path == base or parts.path.startswith(base + "/") or (not base and parts.path == "")


def is_allowed(url: str, prefixes: tuple[str, ...]) -> bool:
    return any(is_under(url, prefix) for prefix in prefixes)
