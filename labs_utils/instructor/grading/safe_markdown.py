"""Markdown to HTML for text nobody vouches for (students' written answers), with maths left for MathJax.

Everything is HTML-escaped first, then a small Markdown subset becomes tags this module writes itself:
paragraphs, headings, lists, quotes, fenced and inline code, pipe tables, emphasis, links (http/https only)
and maths (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, written out as ``\\(...\\)``/``\\[...\\]``
for MathJax). No HTML a student typed reaches the browser as HTML.
"""
from __future__ import annotations

import html
import re

_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)|\\\((.+?)\\\)", re.DOTALL)
_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_INLINE = [
    # Emphasis may run over the line breaks of one paragraph (a bold question sentence wrapped in the source).
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__", re.DOTALL),
     lambda m: f"<strong>{m[1] or m[2]}</strong>"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)", re.DOTALL),
     lambda m: f"<em>{m[1] or m[2]}</em>"),
]
_LIST_ITEM = re.compile(r"^\s{0,3}(?:([-*+])|(\d+)[.)])\s+(.*)$")


def _inline(text: str, slots: list[str]) -> str:
    def link(match: re.Match) -> str:
        slots.append(f'<a href="{match[2]}" rel="noopener noreferrer">{match[1]}</a>')
        return f"\x00{len(slots) - 1}\x00"

    text = _LINK.sub(link, _IMAGE.sub(r"[image: \1]", text))
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    while "\x00" in text:  # slots may hold slots (code inside a link)
        text = re.sub("\x00(\\d+)\x00", lambda m: slots[int(m[1])], text)
    return text


def markdown_html(text: str, heading_offset: int = 3) -> str:
    """HTML for a student's Markdown: paragraphs, headings, lists, quotes, code, pipe tables, emphasis, links
    (http/https only) and maths (TeX kept for MathJax). Everything is escaped first: no HTML passes through.
    ``#`` becomes ``<h{1 + heading_offset}>`` (default: below a page's own h1-h3)."""
    slots: list[str] = []

    def keep(fragment: str) -> str:
        slots.append(fragment)
        return f"\x00{len(slots) - 1}\x00"

    text = re.sub(r"[\x00-\x08\x0b-\x1f]", "", text.replace("\r\n", "\n").replace("\r", "\n"))
    blocks: list[str] = []
    fenced = re.split(r"^```[^\n]*\n(.*?)^```[ \t]*$", text, flags=re.DOTALL | re.MULTILINE)
    for number, part in enumerate(fenced):
        if number % 2:
            blocks.append(f"<pre><code>{html.escape(part)}</code></pre>")
            continue
        part = _CODE.sub(lambda m: keep(f"<code>{html.escape(m[2].strip())}</code>"), part)
        part = _MATH.sub(lambda m: keep(
            f"\\[{html.escape(m[1] or m[2])}\\]" if m[1] or m[2] else f"\\({html.escape(m[3] or m[4])}\\)"), part)
        blocks += _blocks(html.escape(part), slots, heading_offset)
    return "\n".join(blocks)


def _blocks(text: str, slots: list[str], offset: int = 3) -> list[str]:
    out: list[str] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in chunk.split("\n") if line.strip()]
        if not lines:
            continue
        heading = re.match(r"^\s{0,3}(#{1,6})\s+(.*)$", lines[0])
        if heading:
            level = min(len(heading[1]) + offset, 6)
            out.append(f"<h{level}>{_inline(heading[2], slots)}</h{level}>")
            out += _blocks("\n".join(lines[1:]), slots, offset)
        elif all(line.lstrip().startswith("&gt;") for line in lines):
            inner = "\n".join(line.lstrip()[4:].lstrip() for line in lines)
            out.append(f"<blockquote>{''.join(_blocks(inner, slots, offset))}</blockquote>")
        elif len(lines) >= 2 and "|" in lines[0] and re.fullmatch(r"[\s|:-]+", lines[1]) and "-" in lines[1]:
            rows = [[_inline(c.strip(), slots) for c in line.strip().strip("|").split("|")] for line in lines]
            head = "".join(f"<th>{c}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[2:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif _LIST_ITEM.match(lines[0]):
            items: list[str] = []
            for line in lines:
                item = _LIST_ITEM.match(line)
                if item:
                    items.append(item[3])
                else:
                    items[-1] += " " + line.strip()
            tag = "ol" if _LIST_ITEM.match(lines[0])[2] else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(i, slots)}</li>" for i in items) + f"</{tag}>")
        else:
            out.append(f"<p>{_inline(chr(10).join(line.strip() for line in lines), slots)}</p>")
    return out
