"""bot/core/defuse.py: one rule at a time, then arbitrary text, each output read back by an independent oracle.

The oracle (:func:`audit`) does not share a line with the code under test: it parses the output as CommonMark
with GitHub's tables and strikethrough (markdown-it-py, accepting every link scheme, as a renderer before the
sanitizer does) and lists what GitHub would make live: an @-mention in rendered text, a link or image to a
host outside the allow-list, raw HTML carrying a URL attribute, a GFM bare autolink to another host, and on the
raw text a command line or a closing keyword outside code.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.defuse import ZWSP, block, code_span, defuse
from bot.core.markers import markers_in

HOSTS = frozenset({"github.com", "ghe.example.com"})


# ---- the oracle ---------------------------------------------------------------------------------------

def _parser():  # type: ignore[no-untyped-def]
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # every scheme becomes a link here: the check below decides
    return md


_GH_MENTION = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9]")  # GitHub's: after a non-word character
_GFM_AUTOLINK = re.compile(r"(?i)(?:(?<=^)|(?<=[\s*_~(]))((?:https?|ftp)://[^\s<]+|www\.[^\s<]+)")
URL_ATTRIBUTES = {"href", "src", "srcset", "poster", "background", "action", "formaction", "data", "xlink:href",
                  "cite", "longdesc", "ping", "lowsrc", "dynsrc"}
_CLOSING_RAW = re.compile(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s*(?:#\d|[\w.-]+/[\w.-]+#\d|https?://)")
_COMMAND_RAW = re.compile(r"^\s*/[A-Za-z][A-Za-z0-9_-]*(?![A-Za-z0-9_/-])")


def _host_ok(url: str, hosts: frozenset[str]) -> bool:
    url = url.strip()
    if url.startswith(("//", "\\\\", "/\\", "\\/")):
        return False
    parts = urlsplit(url)
    if not parts.scheme:
        return not parts.netloc
    return parts.scheme.lower() in ("http", "https") and (parts.hostname or "") in hosts


class _Tags(HTMLParser):
    """Python's own HTML tokenizer: the tags a browser would see in raw HTML, with their attribute names."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [f"<{tag} {name}=>" for name, _ in attrs if name.lower() in URL_ATTRIBUTES]

    handle_startendtag = handle_starttag


def _url_tags(html_text: str) -> list[str]:
    parser = _Tags()
    parser.feed(html_text.replace("<![", "&lt;!["))  # marked sections: the tokenizer raises on odd ones
    parser.close()
    return parser.found


def _texts(tokens: list) -> list[str]:  # type: ignore[type-arg]
    """Runs of adjacent rendered text (GitHub's text nodes), outside code."""
    runs: list[str] = []
    for token in tokens:
        if token.type == "inline":
            run = ""
            for child in token.children or []:
                if child.type in ("text", "softbreak"):
                    run += child.content if child.type == "text" else "\n"
                else:
                    runs.append(run)
                    run = ""
            runs.append(run)
        elif token.type == "html_block":
            runs.append(re.sub(r"<[^>]*>", " ", token.content))
    return runs


def _code_lines(tokens: list) -> set[int]:  # type: ignore[type-arg]
    return {n for t in tokens if t.type in ("fence", "code_block") and t.map for n in range(*t.map)}


def audit(body: str, hosts: frozenset[str] = HOSTS, *, keep: frozenset[str] = frozenset()) -> list[str]:
    """What ``body`` would make live on GitHub; empty when nothing. ``keep``: strings (a mention) and lines (a
    closing keyword) the bot writes on purpose."""
    tokens = _parser().parse(body)
    runs = _texts(tokens)
    for kept in keep:
        runs = [run.replace(kept, " ") for run in runs]
    problems = [f"mention in {run!r}" for run in runs if _GH_MENTION.search(run)]
    problems += [f"autolink {m!r}" for run in _texts(tokens) for m in _GFM_AUTOLINK.findall(run)
                 if not _host_ok(m if "://" in m else "https://" + m, hosts)]
    for token in tokens:
        for t in [token, *(token.children or [])]:
            if t.type == "link_open" and not _host_ok(str(t.attrGet("href")), hosts):
                problems.append(f"link to {t.attrGet('href')!r}")
            if t.type == "image" and not _host_ok(str(t.attrGet("src")), hosts):
                problems.append(f"image from {t.attrGet('src')!r}")
            if t.type in ("html_inline", "html_block") and (tags := _url_tags(t.content)):
                problems.append(f"html {tags}")
    code = _code_lines(tokens)
    for n, line in enumerate(body.split("\n")):
        for piece in line.split("\r"):
            if piece.strip() in keep:
                continue
            if _COMMAND_RAW.match(piece):
                problems.append(f"command line {piece!r}")
            if n not in code and _CLOSING_RAW.search(piece):
                problems.append(f"closing keyword in {piece!r}")
    return problems


def safe(text: str, **kw: object) -> str:
    """defuse(text), checked by the oracle and for idempotence."""
    out = defuse(text, hosts=HOSTS, **kw)  # type: ignore[arg-type]
    assert defuse(out, hosts=HOSTS, **kw) == out, "not idempotent"  # type: ignore[arg-type]
    assert audit(out) == [] and markers_in(out) == [], (text, out)
    return out


def test_the_oracle_sees_what_the_rules_are_about() -> None:
    """Each kind of live thing, raw, is reported by the oracle (else a pass below would prove nothing)."""
    for raw in ["@alice", "hi @acme/team", "[t](https://evil.example)", "![a](https://evil.example/i.png)",
                "https://evil.example/x", "see www.evil.example", "<https://evil.example>",
                "<a href='https://evil.example'>x</a>", "<img src=x>", "[r]: https://evil.example\n\n[x][r]",
                "/approve", "  /escalate now", "Closes #1", "fixes o/r#2", "&#64;alice", "[t](javascript:alert(1))", "[t](//evil.example)"]:
        assert audit(raw), raw


# ---- mentions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["@alice", "cc @acme/security-team.", "(@bob)", "x.@carol", "_x_@dave",
                                  "é@erin", "\\@frank", "&#64;gina", "&commat;hal", "`@ivan`"])
def test_mentions_are_defused(text: str) -> None:
    out = safe(text)
    assert "@" + ZWSP in out or "&amp;" in out


def test_an_email_address_and_the_bots_own_mention_stay() -> None:
    assert safe("mail bob@example.com") == "mail bob@example.com"
    out = defuse("@acme/leads Reply, and @acme/leads-evil too", hosts=HOSTS, keep=["@acme/leads"])
    assert out == f"@acme/leads Reply, and @{ZWSP}acme/leads-evil too"


# ---- markers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["<!-- triage-lead:status:o/r#1 -->", "```\n<!-- triage-lead:status:1 -->\n```",
                                  "<!--TRIAGE-LEAD :x -->"])
def test_markers_are_broken_in_prose_and_in_code(text: str) -> None:
    out = safe(text)
    assert markers_in(out) == [] and "triage-lead" in out.lower() and ZWSP + ":" in out


# ---- command lines ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["/approve", "ok\n/approve 2", "  /escalate now", "a\r/retry", "\ufeff/cancel",
                                  "```\n/approve\n```", "    /approve", "/approve.", "x\u2028/approve"])
def test_command_lines_are_defused_everywhere(text: str) -> None:
    out = safe(text)
    assert ZWSP + "/" in out


@pytest.mark.parametrize("text", ["/usr/lib/x is a path", "please /approve this", "a/approve", "```\n/usr/bin\n```"])
def test_paths_and_commands_inside_a_line_stay(text: str) -> None:
    assert safe(text) == text


# ---- closing keywords --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Closes #1", "closed #1", "close #1", "Fixes: #2", "fix o/r#3", "FIXED #4",
                                  "resolves https://github.com/o/r/issues/5", "Resolve #6", "resolved: #7",
                                  "**Closes** #8", "Closes \\#9", "Clo&#115;es #10"])
def test_closing_keywords_are_broken(text: str) -> None:
    out = safe(text)
    assert out != text


def test_the_bots_own_closing_line_stays_and_only_it() -> None:
    text = "Closes #5\n\nbody\nCloses #6"
    assert defuse(text, hosts=HOSTS, keep=["Closes #5"]) == f"Closes #5\n\nbody\nC{ZWSP}loses #6"
    assert safe("prefixes #4 and a fixture #3") == "prefixes #4 and a fixture #3"


# ---- links, images, autolinks, HTML ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("[click](https://evil.example/x?d=SECRET)", "click"),
    ("![chart](https://evil.example/p.png)", "chart (image removed)"),
    ("[a](javascript:alert(1)) [b](data:text/html,x) [c](mailto:x@y.z)", "a b c"),
    ("[p](//evil.example/x) [q](<https://evil.example/a b>) [r](https://gist.github.com/x)", "p q r"),
    ("[s](https://github.com@evil.example/) [t](https&#58;//evil.example)", "s [t](https&amp;#58;//evil.example)"),
    ("[u](https://evil.example \"title\nover lines\")", "u"),
    ("[x][(https://evil.example)](https://evil2.example)", "x"),
    ("[x](javascript://github.com/%0Aalert(1)) [y](ftp://github.com/f)", "x y"),
])
def test_links_and_images_to_other_hosts_keep_their_text_and_lose_their_target(text: str, expected: str) -> None:
    assert safe(text) == expected


@pytest.mark.parametrize("text", ["[gh](https://github.com/o/r/pull/1)", "![i](https://github.com/x.png)",
                                  "[rel](/o/r/blob/main/x.py) [a](#anchor) [e](https://GHE.example.com/x)",
                                  "<https://github.com/o/r>", "https://github.com/o/r", "<details><summary>s</summary>"])
def test_links_to_allowed_hosts_relative_links_and_plain_tags_stay(text: str) -> None:
    assert safe(text) == text


@pytest.mark.parametrize("text", ["see https://evil.example/x?d=1", "see www.evil.example", "<https://evil.example>",
                                  "https\\://evil.example", "ftp://evil.example", "[r]: https://evil.example\n\n[x][r]",
                                  "> - [r]:\n  https://evil.example\n\n![x][r]", "<a href=\"https://evil.example\">x</a>",
                                  "<img src=https://evil.example/p>", "<a title='>' href=x>y</a>", "<video poster=x>",
                                  "<div>\n<img\nsrc=x>\n</div>", "<form action=x>"])
def test_autolinks_definitions_and_html_with_urls_are_not_live(text: str) -> None:
    assert safe(text) != text


# ---- code ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["```py\n@app.route('/')\nhttps://evil.example\n```", "~~~\n@a [x](https://e.x)\n~~~",
                                  "````\n```\n@a\n```\n````", "  ```\n@a\n  ```\n", "text\n```\n@a\n```\nmore"])
def test_a_closed_fence_at_the_top_level_is_left_as_code(text: str) -> None:
    assert safe(text) == text


@pytest.mark.parametrize("text", [
    "```\nunclosed @a", "- item\n  ```\n@a\n  ```", "> ```\n> @a\n> ```", "    @a in indented code",
    "Looks good ~~~ @a ~~~ to me.", "``` `x`\n@a\n```", "<div>\n```\n@a\n```\n</div>", "`@a` inline",
    "<pre>\n```\n@a\n```\n</pre>", "- a\n\n   ```\n@b\n   ```", "```\n@a\n``` x\n"])
def test_anything_else_that_looks_like_code_is_prose(text: str) -> None:
    assert "@" + ZWSP in safe(text)


def test_a_fence_that_raw_html_swallowed_is_not_trusted_once_the_html_is_escaped() -> None:
    """The <div x=1> is escaped, so the fence it held opens on GitHub and pairs with the next: nothing trusted."""
    text = "<div x=1>\n```\nprose\n\n```\n@b\n```"
    assert "@" + ZWSP + "b" in safe(text)


def test_code_false_trusts_no_fence() -> None:
    assert safe("```\n@a\n```", code=False) == f"```\n@{ZWSP}a\n```"


# ---- code_span and block -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["a`b", "`x", "x`", "``` @acme/team ```", "line1\nline2", " padded ", "a\u202eb", "",
                                  "src/x` @acme/security-team `.py"])
def test_a_code_span_holds_its_text_whole(text: str) -> None:
    span = code_span(text)
    children = next(t for t in _parser().parse(f"- {span} after") if t.type == "inline").children or []
    assert [c.type for c in children][0] == "code_inline" and children[1].content == " after"
    assert children[0].content == (" ".join("".join(c if c.isprintable() else " " for c in text).split()) or " ")


def test_a_code_span_is_clipped() -> None:
    assert len(code_span("x" * 1000, 50)) < 60


@given(st.text(alphabet=st.sampled_from("`~ @\nab-/"), max_size=60))
def test_a_block_holds_its_text_whole(text: str) -> None:
    [fence] = [t for t in _parser().parse(block(text, "py`")) if t.type == "fence"]
    assert fence.content == text.rstrip("\n") + "\n" and fence.info == "py"


# ---- passes ------------------------------------------------------------------------------------------------

TRICKY = ["<div x=1>\n```\nprose\n\n```\n@b\n```", "[x][(https://evil.example)](https://evil2.example)",
          "]([t](https://evil.example))", "[t](<a b>)"]


@pytest.mark.parametrize("text", TRICKY)
def test_each_pass_alone_leaves_nothing_live(text: str) -> None:
    """A text can take several passes to settle (below); each one's output is inert by itself already: a fence
    that defusing turned live is not trusted, a link that a removal completed is read again, a link inside
    another's target is read too."""
    from bot.core.defuse import _pass

    assert audit(_pass(text, HOSTS, frozenset(), True)) == []


@pytest.mark.parametrize("text", TRICKY)
def test_what_takes_several_passes_comes_out_as_it_stays(text: str) -> None:
    safe(text)


def test_a_text_full_of_links_costs_a_bounded_number_of_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a thousand ``](`` every one is broken at once (allowed links too) instead of each being read."""
    import bot.core.defuse as d

    reads: list[int] = []
    real = d._target
    def counted(text: str, i: int) -> tuple[str, int] | None:
        reads.append(i)
        return real(text, i)

    monkeypatch.setattr(d, "_target", counted)
    out = safe("[ok](https://github.com/a) ](" * 2_000)
    assert len(reads) <= d._MANY and "[ok](https://github.com" not in out


# ---- arbitrary text ------------------------------------------------------------------------------------------

PIECES = ["@alice", "@acme/team", "https://evil.example/x?d=S", "www.evil.example", "https://github.com/a",
          "[t](https://evil.example)", "![a](https://evil.example/i.png)", "<https://evil.example>", "[t](",
          "<a href='https://evil.example'>", "<img src=x>", "[r]: https://evil.example", "[r]", "/approve",
          "/escalate now", "Closes #1", "fixes o/r#2", "```", "~~~", "````", "- ", "> ", "1. ", "    ", "`", "\\",
          "<!-- triage-lead:x -->", "&#64;", "&amp;", "(", ")", "[", "]", "<div>", "</div>", "<details>", "_", "*",
          "\n", "\n", "\n\n", " ", "\r", "#", ":", "/", "!", "\"", "'", "http://", "<", "![", "](", "<https://",
          "javascript:", "&#x40;", "\t", "  - ", "<pre>", "</pre>", "<!--", "-->", "[r]:", "\u2028", "www.", "@",
          "github.com", "evil.example", "#1", "=", "<a", " href=", " src=", ">", "//", "\\"]
TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS, st.booleans())
def test_any_text_comes_out_inert_and_stays_as_it_came_out(text: str, code: bool) -> None:
    out = defuse(text, hosts=HOSTS, code=code)
    assert defuse(out, hosts=HOSTS, code=code) == out
    assert audit(out) == [] and markers_in(out) == [], out


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_unicode_text_comes_out_inert(text: str) -> None:
    out = defuse(text, hosts=HOSTS)
    assert defuse(out, hosts=HOSTS) == out and audit(out) == [], out


@pytest.mark.parametrize("text", [
    ("[" * 3000 + "](" + "'" * 3000 + "```\n" * 500 + "`````\n````\n" * 500 + "@a " * 3000)[:65_000],
    "](" * 32_000, " " * 60_000 + "/approve", "\r\n" * 30_000, "www." * 15_000, "[a](" * 15_000, "fix" + "*" * 60_000],
    ids=["brackets-and-fences", "link-ends", "spaces", "line-endings", "www", "link-starts", "keyword-stars"])
def test_a_long_hostile_body_comes_out_inert(text: str) -> None:
    """Texts shaped to make a parser backtrack (each once took seconds to minutes here): still defused."""
    safe(text)


def test_bidirectional_overrides_are_shown_by_name_never_applied() -> None:
    """Trojan Source: an override in a file name, a title or a quoted line would make it read as something else.
    Every post shows it by name instead (right-to-left text itself is left alone)."""
    text = "evil\u202eexe.txt and \u2066hidden\u2069 beside שלום"
    out = defuse(text, hosts=frozenset())
    assert not any(c in out for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert "[U+202E]" in out and "[U+2066]" in out and "שלום" in out
    assert defuse(out, hosts=frozenset()) == out  # idempotent
