"""The chat page's files, read as files: everything the page loads is in the package (it
works offline: no CDN, no external font), no inline script (the CSP forbids it), model
output is never parsed as HTML, and the files ship in the wheel."""
from __future__ import annotations

import re
import tomllib

from assistant.server.page import CONTENT_SECURITY_POLICY, INDEX_HTML, STATIC_DIR
from tests.helpers import REPO_ROOT

PAGE_FILES = sorted(path for path in STATIC_DIR.iterdir() if path.suffix in (".html", ".js", ".css"))


def test_the_page_loads_only_its_own_files():
    html = INDEX_HTML.read_text()
    referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/app.js" in referenced and "/static/style.css" in referenced
    for ref in referenced:
        assert ref.startswith("/static/") or ref == "data:,", ref
        if ref.startswith("/static/"):
            assert (STATIC_DIR / ref.removeprefix("/static/")).is_file(), ref


def test_javascript_imports_resolve_to_files_of_the_page():
    for script in STATIC_DIR.glob("*.js"):
        for target in re.findall(r'^import .* from "(.+)";$', script.read_text(), flags=re.MULTILINE):
            assert target.startswith("./") and (STATIC_DIR / target[2:]).is_file(), f"{script.name}: {target}"


def test_nothing_comes_from_another_origin():
    for path in PAGE_FILES:
        text = path.read_text()
        # links in comments are fine; anything the browser would fetch is not
        code = re.sub(r"//[^\n]*|/\*.*?\*/|<!--.*?-->", "", text, flags=re.DOTALL)
        assert not re.search(r"https?://|@import|url\(\s*['\"]?(?!data:)", code), path.name


def test_no_inline_script_and_no_html_from_the_model():
    html = INDEX_HTML.read_text()
    assert all(attrs.strip().startswith('type="module" src=') for attrs in re.findall(r"<script([^>]*)>", html))
    assert not re.search(r"<script[^>]*>\s*[^<\s]", html) and not re.search(r"\son[a-z]+=", html)
    for script in STATIC_DIR.glob("*.js"):
        code = script.read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", code), \
            script.name
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "script-src 'self'" in meta and "unsafe" not in meta


def test_the_page_files_ship_in_the_package():
    package_data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "server/static/*" in package_data["assistant"]
