"""How much of a piece of code is torch's own source (torch.optim, torch.utils.checkpoint), renamed or not.

Both sides are tokenized and normalized: comments, docstrings and layout dropped, local names and numbers
replaced by placeholders (renaming a variable changes nothing), attribute names and keywords kept (``.addcmul_``,
``.lerp_`` and the control flow are what a copy keeps). A student's token counts as copied when it lies in a run of
:data:`WINDOW` tokens that also occurs in torch's source. Boilerplate an honest optimizer shares with torch (``for
group in self.param_groups: for p in group["params"]: if p.grad is None: continue``) is shorter than
:data:`MIN_TOKENS` copied tokens; a pasted implementation is several times longer.
"""
from __future__ import annotations

import functools
import io
import keyword
import tokenize
from pathlib import Path

WINDOW = 16  # tokens in a row that must match
MIN_TOKENS = 150  # copied tokens below this are never a copy (shared boilerplate)
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
         tokenize.ENDMARKER}


def tokens(source: str) -> list[str]:
    """The normalized tokens of ``source`` (empty when it does not tokenize)."""
    out: list[str] = []
    previous = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in _SKIP:
                continue
            if token.type == tokenize.STRING:
                if previous in (None, ":"):  # a docstring (or a bare string statement)
                    previous = "S"
                    continue
                text = "S"
            elif token.type == tokenize.NUMBER:
                text = "0"
            elif token.type == tokenize.NAME:
                text = token.string if keyword.iskeyword(token.string) or previous == "." else "N"
            else:
                text = token.string
            out.append(text)
            previous = text
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return out


def _windows(sequence: list[str]) -> list[int]:
    return [hash(tuple(sequence[i:i + WINDOW])) for i in range(len(sequence) - WINDOW + 1)]


@functools.lru_cache(maxsize=1)
def reference_windows() -> frozenset[int]:
    """Every WINDOW-token run of torch.optim's and torch.utils.checkpoint's source files."""
    import torch.optim
    import torch.utils.checkpoint

    files = sorted(Path(torch.optim.__file__).parent.rglob("*.py")) + [Path(torch.utils.checkpoint.__file__)]
    found: set[int] = set()
    for path in files:
        try:
            found.update(_windows(tokens(path.read_text(encoding="utf-8"))))
        except OSError:
            continue
    return frozenset(found)


def copied_fraction(source: str) -> tuple[float, int]:
    """(the fraction of ``source``'s tokens that are torch's source, its token count); (0, n) when fewer than
    MIN_TOKENS tokens are copied."""
    mine = tokens(source)
    if len(mine) < MIN_TOKENS:
        return 0.0, len(mine)
    reference = reference_windows()
    copied = [False] * len(mine)
    for start, window in enumerate(_windows(mine)):
        if window in reference:
            copied[start:start + WINDOW] = [True] * WINDOW
    count = sum(copied)
    return (count / len(mine) if count >= MIN_TOKENS else 0.0), len(mine)
