"""Constrained decoding for the local model: only tokens that keep the reply valid JSON may follow.

The 135M model rarely writes parseable JSON unaided. ``lm-format-enforcer`` turns a JSON schema
into a ``prefix_allowed_tokens_fn`` for ``generate``; the tokenizer's token table is built once
per tokenizer (about a second) and reused. Left alone, a small model keeps writing inside a
string until ``max_tokens`` cuts it; near the end of the budget the decoder is steered to close
the value, so every reply is complete JSON.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_tables: dict[int, Any] = {}
_texts: dict[int, Any] = {}
_tables_lock = threading.Lock()

AllowedTokens = Callable[[int, Any], list[int]]


def json_schema_of(response_format: Any) -> tuple[bool, dict[str, Any] | None]:
    """``(wants_json, schema)`` from an OpenAI-style ``response_format`` or a pydantic class.

    ``{"type": "json_object"}`` wants any JSON object (schema ``None``); ``{"type": "json_schema",
    "json_schema": {"schema": ...}}`` wants that schema; ``{"type": "text"}`` or ``None`` wants text.
    """
    if response_format is None:
        return False, None
    schema_of = getattr(response_format, "model_json_schema", None)
    if callable(schema_of):
        return True, schema_of()
    if not isinstance(response_format, dict):
        raise ValueError(f"response_format expects a dict or a pydantic model class, got "
                         f"{type(response_format).__name__}")
    kind = response_format.get("type")
    if kind == "json_object":
        return True, response_format.get("schema") or {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return True, schema or {"type": "object"}
    if kind in (None, "text"):
        return False, None
    raise ValueError(f"response_format type expects 'text', 'json_object' or 'json_schema', got {kind!r}")


def _decode(tokenizer: Any, tokens: list[int]) -> str:
    # A token sequence may end inside a multi-byte character; the enforcer wants whole ones.
    return tokenizer.decode(tokens).rstrip("\ufffd")


def build_tokenizer_table(tokenizer: Any) -> Any:
    """lm-format-enforcer's view of a transformers tokenizer: each regular token's text.

    A token's text is read after an anchor token, so a leading space (a word start) survives
    decoding; lm-format-enforcer's own transformers helper predates transformers 5.
    """
    from lmformatenforcer import TokenEnforcerTokenizerData

    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    regular = _byte_level_tokens(tokenizer, ids) or _decoded_tokens(tokenizer, ids)
    return TokenEnforcerTokenizerData(regular, functools.partial(_decode, tokenizer),
                                      tokenizer.eos_token_id, False, len(tokenizer))


def _decoded_tokens(tokenizer: Any, ids: list[int]) -> list[tuple[int, str, bool]]:
    """Each token's text by decoding it twice, alone and after an anchor (any tokenizer)."""
    anchor = tokenizer.encode("0", add_special_tokens=False)[-1]
    offset = len(tokenizer.decode([anchor]))
    alone = tokenizer.batch_decode([[i] for i in ids])
    anchored = tokenizer.batch_decode([[anchor, i] for i in ids])
    return [(i, text[offset:], len(text) - offset > len(single))
            for i, single, text in zip(ids, alone, anchored)]


def _byte_level_tokens(tokenizer: Any, ids: list[int], checks: int = 256) -> list[tuple[int, str, bool]] | None:
    """Each token's text read off its byte-level spelling (GPT-2 style tokenizers, SmolLM2's):
    a tenth of the time of decoding every token twice. ``None`` unless the tokenizer decodes byte
    by byte and ``checks`` tokens spread over the vocabulary read the same as when decoded."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if type(decoder).__name__ != "ByteLevel":
        return None
    to_byte = {char: byte for byte, char in _byte_alphabet().items()}
    try:
        texts = [bytes(to_byte[c] for c in piece).decode("utf-8", errors="replace")
                 for piece in tokenizer.convert_ids_to_tokens(ids)]
    except (KeyError, TypeError):  # a piece outside the byte alphabet: not plain byte-level
        return None
    step = max(1, len(ids) // checks)
    if texts[::step] != [t for _, t, _ in _decoded_tokens(tokenizer, ids[::step])]:
        return None
    return [(i, text, False) for i, text in zip(ids, texts)]


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable bytes as themselves, the rest from 256."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


def _tokenizer_table(tokenizer: Any) -> Any:
    with _tables_lock:
        table = _tables.get(id(tokenizer))
        if table is None:
            table = _tables[id(tokenizer)] = build_tokenizer_table(tokenizer)
        return table


# How near the end of ``max_tokens`` the closing search starts; beyond it nothing is computed.
CLOSE_HORIZON = 48
# Characters tried first when looking for the shortest way to close a value: quotes, brackets,
# separators, then the starts of the shortest values (0, null, "", [], {}).
_CLOSERS = '"}],:0n[{'
# Where the parser allows few characters (inside a key or a literal), every one is tried.
_FEW = 4


def _rank(char: str) -> tuple[int, str]:
    place = _CLOSERS.find(char)
    return (place if place >= 0 else len(_CLOSERS) + char.isspace(), char)


def closing_text(parser: Any, *, max_chars: int = 96, max_states: int = 2_000) -> str | None:
    """A short text that takes ``parser`` (a lm-format-enforcer character parser) to a state
    that can end, or ``None`` if none is found within ``max_chars`` and ``max_states``.

    Depth-first, closing characters first: inside a string that is its closing quote, at a value
    the shortest value (``""``, ``0``, ``[]``), then ``,``/``}``. Where the parser allows only a
    few characters (a key's letters, a literal), each is tried. The search never adds content
    to a string, so it is not lost among all the characters a string may hold.
    """
    states = max_states

    def search(state: Any, text: str) -> str | None:
        nonlocal states
        if state.can_end():
            return text
        if len(text) >= max_chars or states <= 0:
            return None
        states -= 1
        allowed = state.get_allowed_characters()
        chars = sorted(allowed, key=_rank) if len(allowed) <= _FEW else [
            c for c in _CLOSERS if c in allowed]
        for char in chars:
            try:
                following = state.add_character(char)
            except Exception:  # a character the parser advertised but refuses: skip it
                continue
            found = search(following, text + char)
            if found is not None:
                return found
        return None

    return search(parser, "")


class _TokenTexts:
    """Token ids by their text, to spell a closing text in as few tokens as the vocabulary allows."""

    __slots__ = ("by_text", "longest")

    def __init__(self, table: Any) -> None:
        self.by_text: dict[str, list[int]] = {}
        for token_id, text, _ in table.regular_tokens:
            if text:
                self.by_text.setdefault(text, []).append(token_id)
        self.longest = max((len(t) for t in self.by_text), default=1)

    def prefixes(self, text: str) -> list[int]:
        """Ids of the tokens whose text is a non-empty prefix of ``text``, longest first."""
        return [i for k in range(min(len(text), self.longest), 0, -1)
                for i in self.by_text.get(text[:k], ())]

    def count(self, text: str) -> int:
        """Tokens needed to write ``text`` taking the longest token each time (one a character
        at worst)."""
        needed = position = 0
        while position < len(text):
            step = next((k for k in range(min(len(text) - position, self.longest), 0, -1)
                         if text[position:position + k] in self.by_text), 1)
            position += step
            needed += 1
        return needed


class _AllowedTokens:
    """``prefix_allowed_tokens_fn`` for ``generate``: the tokens the parser accepts next.

    Near the end of ``max_new_tokens`` it finds a short text that closes the value; once the
    tokens left are just enough to write it (longest tokens first, then the end), the next token
    is the longest one spelling its start, so the reply is complete JSON when the budget runs
    out instead of a cut string. Once the value is complete and only whitespace may follow, the
    only token allowed is the end.
    """

    __slots__ = ("enforcer", "texts", "width", "max_new_tokens", "eos", "forced", "ended")

    def __init__(self, enforcer: Any, texts: _TokenTexts, width: int, max_new_tokens: int,
                 eos: int) -> None:
        self.enforcer = enforcer
        self.texts = texts
        self.width = width
        self.max_new_tokens = max_new_tokens
        self.eos = eos
        self.forced = 0  # steps at which closing was forced, for tests and benchmarks
        self.ended = 0  # rows ended as soon as their value was complete

    def __call__(self, batch_id: int, sequence: Any) -> list[int]:
        tokens = sequence.tolist()
        allowed = self.enforcer.get_allowed_tokens(tokens).allowed_tokens
        parser = self.enforcer.prefix_states[tuple(tokens)].parser
        if parser.can_end() and self.eos in allowed and _only_space(parser):
            # The value is complete and only whitespace may follow: a small model pads with
            # newlines until max_tokens, each one a full decoding step. End here instead.
            self.ended += 1
            return [self.eos]
        left = self.max_new_tokens - (len(tokens) - self.width)
        if left > CLOSE_HORIZON or not self.max_new_tokens:
            return allowed
        closing = closing_text(parser)
        # One token spare beyond the closing text and the end: the longest token may be refused.
        if closing is None or self.texts.count(closing) + 2 < left:
            return allowed
        self.forced += 1
        if not closing:
            return [self.eos]
        permitted = set(allowed)
        toward = [i for i in self.texts.prefixes(closing) if i in permitted]
        return toward[:1] or allowed


def _only_space(parser: Any) -> bool:
    """Whether nothing but whitespace may follow (a complete object or array, not a number that
    could still grow)."""
    try:
        return all(c.isspace() for c in parser.get_allowed_characters())
    except Exception:  # a parser state that cannot list its characters: let the model go on
        return False


def allowed_tokens_fn(tokenizer: Any, schema: dict[str, Any] | None, *, width: int = 0,
                      max_new_tokens: int = 0) -> AllowedTokens:
    """A ``prefix_allowed_tokens_fn`` keeping each generated row inside ``schema``.

    ``width`` is the (padded) prompt length and ``max_new_tokens`` the generation budget; with
    both, the value is closed before the budget runs out.
    """
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer

    table = _tokenizer_table(tokenizer)
    return _AllowedTokens(TokenEnforcer(table, JsonSchemaParser(schema)), _token_texts(table),
                          width, max_new_tokens, tokenizer.eos_token_id)


def _token_texts(table: Any) -> _TokenTexts:
    with _tables_lock:
        texts = _texts.get(id(table))
        if texts is None:
            texts = _texts[id(table)] = _TokenTexts(table)
        return texts
