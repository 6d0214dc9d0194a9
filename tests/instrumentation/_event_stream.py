"""Bedrock stream answers in AWS's event stream wire format, for a real boto3 client to parse.

botocore's Stubber cannot return a stream operation's answer (it validates the response against
the output shape, and an event stream is no dict), so the client is answered one step earlier,
as botocore's own functional tests do: a ``before-send`` handler returns the HTTP response,
whose body holds the encoded frames. botocore then does what it does with a real answer: parses
the headers and wraps the body in its own ``EventStream``, which decodes each frame (prelude,
headers, checksums) and parses its payload against the service model.

Frames follow the AWS event stream encoding: a prelude (total length, headers length, CRC32 of
the two), the headers (name length, name, value type 7 = string, value length, value), the
payload, and a CRC32 of everything before it.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse

_STRING = 7


def _header(name: str, value: str) -> bytes:
    key, text = name.encode(), value.encode()
    return struct.pack(">B", len(key)) + key + struct.pack(">BH", _STRING, len(text)) + text


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """One event of a stream operation (``messageStart``, ``contentBlockDelta``, ``chunk``, ...)."""
    headers = {":message-type": "event", ":event-type": kind, ":content-type": "application/json"}
    return frame(headers, json.dumps(payload).encode())


def chunk(payload: dict[str, Any]) -> bytes:
    """One ``invoke_model_with_response_stream`` chunk: the model's JSON, base64 in the event."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return event("chunk", {"bytes": base64.b64encode(raw).decode()})


def error_event(code: str, message: str) -> bytes:
    """An error in the middle of a stream (``throttlingException``, ``modelStreamErrorException``)."""
    headers = {":message-type": "exception", ":exception-type": code, ":content-type": "application/json"}
    return frame(headers, json.dumps({"message": message}).encode())


@dataclass
class Pause:
    """Wait this long before the next frame reaches the client (a model still generating)."""

    seconds: float


class RawBody:
    """The HTTP body of a streamed answer, as the HTTP client hands it to botocore: ``stream()``
    yields the bytes as they arrive, ``close()`` releases the connection. An exception object
    in ``parts`` is raised where it stands (a connection that breaks mid-stream)."""

    def __init__(self, parts: Sequence[bytes | Pause | BaseException]) -> None:
        self.parts = list(parts)
        self.closed = False
        self.sent = 0

    def stream(self, **_: Any) -> Iterator[bytes]:
        for part in self.parts:
            if self.closed:
                return
            if isinstance(part, Pause):
                time.sleep(part.seconds)
            elif isinstance(part, BaseException):
                raise part
            else:
                self.sent += 1
                yield part

    def close(self) -> None:
        self.closed = True


def answer_with(client: Any, operation: str, body: RawBody) -> None:
    """The client's next ``operation`` call gets ``body`` as a 200 event stream answer."""

    def send(request: Any, **_: Any) -> AWSResponse:
        client.meta.events.unregister(f"before-send.bedrock-runtime.{operation}", send)
        headers = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": "req-1"}
        return AWSResponse(request.url, 200, headers, body)

    client.meta.events.register(f"before-send.bedrock-runtime.{operation}", send)
