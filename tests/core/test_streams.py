"""The one stream base: every shape reports exactly one finish, and the source's own values pass through."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llm_otel import adapter


class Recording(adapter.StreamWatch):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.depth = 0

    def enter(self) -> Any:
        self.depth += 1
        return self.depth

    def exit(self, token: Any) -> None:
        assert token == self.depth
        self.depth -= 1

    def item(self, item: Any) -> None:
        self.events.append(f"item {item}")

    def end(self) -> None:
        self.events.append("end")

    def fail(self, error: BaseException) -> None:
        self.events.append(f"fail {type(error).__name__}")

    def close(self) -> None:
        self.events.append("close")


class Boom(Exception):
    pass


def numbers(fail: bool = False) -> Iterator[int]:
    yield 1
    yield 2
    if fail:
        raise Boom


async def anumbers(fail: bool = False) -> AsyncIterator[int]:
    yield 1
    yield 2
    if fail:
        raise Boom


def test_generator_shape_reports_end_failure_and_close_once() -> None:
    watch = Recording()
    assert list(adapter.watch_generator(numbers(), watch)) == [1, 2]
    assert watch.events == ["item 1", "item 2", "end"] and watch.depth == 0

    watch = Recording()
    with pytest.raises(Boom):
        list(adapter.watch_generator(numbers(fail=True), watch))
    assert watch.events == ["item 1", "item 2", "fail Boom"]

    watch = Recording()
    stream = adapter.watch_generator(numbers(), watch)
    assert next(stream) == 1
    stream.close()
    assert watch.events == ["item 1", "close"]


def test_generator_shape_passes_sent_values_and_plain_iterators() -> None:
    def echo() -> Any:
        got = yield "ready"
        yield f"got {got}"

    stream = adapter.watch_generator(echo(), Recording())
    assert next(stream) == "ready"
    assert stream.send("x") == "got x"
    assert list(adapter.watch_generator(iter([3, 4]), Recording())) == [3, 4]


class Source:
    """An SDK-stream-like object: iterable, with attributes and a close()."""

    response = "the http response"

    def __init__(self) -> None:
        self.closed = False
        self._items = iter([1, 2])

    def __iter__(self) -> Iterator[int]:
        return self._items

    def close(self) -> None:
        self.closed = True


def test_object_shape_forwards_and_finishes_once() -> None:
    watch = Recording()
    source = Source()
    stream = adapter.WatchedStream(source, watch)
    assert stream.response == "the http response"
    assert list(stream) == [1, 2]
    stream.close()
    assert watch.events == ["item 1", "item 2", "end"]  # closing after the end is no second finish
    assert source.closed


def test_object_shape_dropped_unread_is_closed() -> None:
    watch = Recording()
    stream = adapter.WatchedStream(Source(), watch)
    del stream
    gc.collect()
    assert watch.events == ["close"]


def test_object_shape_with_block_closes_early() -> None:
    watch = Recording()
    with adapter.WatchedStream(Source(), watch) as stream:
        assert next(stream) == 1
    assert watch.events == ["item 1", "close"]


async def test_async_shapes() -> None:
    watch = Recording()
    assert [x async for x in adapter.watch_async_generator(anumbers(), watch)] == [1, 2]
    assert watch.events == ["item 1", "item 2", "end"]

    watch = Recording()
    with pytest.raises(Boom):
        async for _ in adapter.AsyncWatchedStream(anumbers(fail=True), watch):
            pass
    assert watch.events == ["item 1", "item 2", "fail Boom"]

    watch = Recording()
    stream = adapter.AsyncWatchedStream(anumbers(), watch)
    assert await stream.__anext__() == 1
    await stream.aclose()
    assert watch.events == ["item 1", "close"]
