"""The runner's HTTP to plugins, against the reference artifact store as a real process:
archives stream through one chunk at a time, and failures say what happened."""

from __future__ import annotations

import itertools
import tarfile
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from bob_common.plugin_policy import AddressPolicy
from runner_svc.errors import TransferFailed
from runner_svc.executors import tarsafe
from runner_svc.plugins.transfer import Aborted, PluginHttp
from tests.runner.conftest import tar_of

MB = 1024 * 1024
SIZE = 64 * MB
# Far below SIZE: what a transfer may hold at once, with room for the libraries' buffers.
PEAK = 8 * MB


def _big_tar() -> Iterator[bytes]:
    """A tar of one SIZE-byte file, made as it is read."""
    info = tarfile.TarInfo("big.bin")
    info.size = SIZE
    yield info.tobuf(tarfile.PAX_FORMAT)
    yield from itertools.repeat(b"b" * MB, SIZE // MB)
    yield b"\0" * 1024


def _peak(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_upload_and_a_checked_download_stream_in_bounded_memory(plugins):
    http = PluginHttp(timeout_s=30)
    url = f"{plugins.store_url}/bob_artifact/dev/big/r-1/big"
    abort = threading.Event()

    upload_peak = _peak(lambda: http.upload(url, _big_tar(), abort))

    received = 0

    def download() -> None:
        nonlocal received
        for chunk in tarsafe.rewrite(http.fetch(url, {}, abort), "res"):
            received += len(chunk)

    download_peak = _peak(download)

    assert (plugins.store_dir / "dev/big/r-1/big").stat().st_size >= SIZE
    assert received > SIZE
    assert upload_peak < PEAK, upload_peak
    assert download_peak < PEAK, download_peak


def test_a_plugin_error_names_the_plugin_and_its_status_not_its_body(plugins, caplog):
    # The reason ends up in the run's detail: an internal service's body stays in the
    # runner's log.
    http = PluginHttp(timeout_s=5)
    url = f"{plugins.store_url}/bob_artifact/dev/none/r-1/missing"
    with pytest.raises(TransferFailed) as caught:
        list(http.fetch(url, {}, threading.Event(), "artifact store 'local'"))
    assert str(caught.value) == "artifact store 'local' answered 404 Not Found"
    assert "No such artifact" in caplog.text


def test_an_unreachable_plugin_is_a_transfer_failure_without_connection_details():
    http = PluginHttp(timeout_s=2)
    with pytest.raises(TransferFailed) as caught:
        http.upload("http://127.0.0.1:9/x", iter([b"data"]), threading.Event(), "store 's'")
    assert str(caught.value) == "could not reach store 's'"


def test_a_refused_address_is_never_connected_to(plugins):
    http = PluginHttp(timeout_s=2, policy=AddressPolicy(allow_private=False))
    url = f"{plugins.store_url}/bob_artifact/dev/none/r-1/missing"
    with pytest.raises(TransferFailed, match="^could not reach the plugin$"):
        list(http.fetch(url, {}, threading.Event()))


def test_a_failure_names_the_plugin_without_its_credentials(plugins, caplog):
    # The runner's log has the URL, a password in it masked.
    http = PluginHttp(timeout_s=2)
    store = plugins.store_url.replace("http://", "http://u:s3cret@")
    with pytest.raises(TransferFailed):
        list(http.fetch(f"{store}/bob_artifact/dev/none/r-1/missing", {}, threading.Event()))
    with pytest.raises(TransferFailed):
        http.upload("http://tok3n@127.0.0.1:9/x", iter([b"data"]), threading.Event())
    assert "GET http://u:***@127.0.0.1:" in caplog.text
    assert "POST http://***@127.0.0.1:9/x failed: " in caplog.text
    assert "s3cret" not in caplog.text and "tok3n" not in caplog.text


def test_an_abort_ends_a_transfer_at_the_next_chunk(plugins):
    http = PluginHttp(timeout_s=5)
    url = f"{plugins.store_url}/bob_artifact/dev/abort/r-1/a"
    abort = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"first"
        abort.set()  # a stop arrives while the body is on its way
        yield b"second"

    with pytest.raises(TransferFailed):
        http.upload(url, chunks(), abort)
    # The store kept nothing of the broken-off upload
    assert not (plugins.store_dir / "dev/abort/r-1/a").exists()

    http.upload(url, iter([tar_of(("f", b"x"))]), threading.Event())
    abort.set()
    with pytest.raises(Aborted):
        list(http.fetch(url, {}, abort))
