"""The signaling messages a participant may send, validated before anything acts on them.

Every message is a JSON object with a `type`. Relayed messages (offer, answer, ice) name the
participant they are `to`; the server adds `from`. Anything else gets an `error` message back
with a stable code; the socket stays open.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = ["MAX_MESSAGE_BYTES", "ClientMessage", "ProtocolError", "parse", "relayed_text"]

MAX_MESSAGE_BYTES = 64 * 1024
_PARTICIPANT = Field(min_length=1, max_length=64)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Knock(_Message):
    type: Literal["knock"]


class Admit(_Message):
    type: Literal["admit"]
    participant: str = _PARTICIPANT


class Deny(_Message):
    type: Literal["deny"]
    participant: str = _PARTICIPANT


class Offer(_Message):
    type: Literal["offer"]
    to: str = _PARTICIPANT
    sdp: str = Field(min_length=1, max_length=60_000)


class Answer(_Message):
    type: Literal["answer"]
    to: str = _PARTICIPANT
    sdp: str = Field(min_length=1, max_length=60_000)


class Ice(_Message):
    type: Literal["ice"]
    to: str = _PARTICIPANT
    candidate: dict[str, Any] | None  # None: end of candidates


class Chat(_Message):
    type: Literal["chat"]
    text: str = Field(min_length=1, max_length=4000)


class Leave(_Message):
    type: Literal["leave"]


class End(_Message):
    type: Literal["end"]


ClientMessage = Annotated[
    Knock | Admit | Deny | Offer | Answer | Ice | Chat | Leave | End, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class ProtocolError(Exception):
    """A message that cannot be accepted; `code` goes back to the sender."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse(raw: str) -> ClientMessage:
    """The validated message in `raw`; raises ProtocolError naming what is wrong."""
    if len(raw.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"a message has at most {MAX_MESSAGE_BYTES} bytes")
    try:
        # One pass in pydantic-core's parser: the common case, and half the cost of
        # json.loads followed by validation. Refusals take the slower path below, which
        # can say exactly what is wrong.
        return _ADAPTER.validate_json(raw)
    except ValidationError:
        pass
    try:
        data = json.loads(raw)
    except ValueError:
        raise ProtocolError("malformed", "not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("malformed", "a message is a JSON object with a string 'type'")
    try:
        _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid":
            raise ProtocolError(
                "unknown_type", f"unknown message type {data['type'][:40]!r}"
            ) from None
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("invalid", f"{data['type'][:40]}: {where}: {first['msg']}") from None
    # Valid as a Python object, not as JSON text (pydantic's JSON mode is stricter in places).
    raise ProtocolError("malformed", "the message could not be read as JSON")


def relayed_text(raw: str, sender: str) -> str:
    """The text of a validated offer, answer or candidate as its addressee gets it: the
    sender's own JSON with `"from"` added, so the server neither re-encodes nor copies it.

    Safe because `raw` has passed `parse`: a JSON object with no key beyond the message's
    own (so no "from" of the sender's making), and `sender` is a hex participant id.
    """
    return '{"from":"' + sender + '",' + raw.lstrip()[1:]
