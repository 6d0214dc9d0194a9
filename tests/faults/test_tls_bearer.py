"""OTLP over TLS with a bearer token, against the real Collector's ``bearertokenauth`` extension.

The shipped overlay ``observability/collector/otlp-tls-bearer.yaml`` is merged over
``config.yaml`` (and ``file-export.yaml``, to see what arrives) with a freshly
made self-signed certificate and a token file. The application exports with
``configure(endpoint="https://...", headers={"authorization": "Bearer ..."})`` and
``OTEL_EXPORTER_OTLP_CERTIFICATE``: with the right token its data arrives; with a
wrong one it is rejected, never raises into the app, and every rejected export is
counted in ``llm_otel.telemetry.dropped``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import llm_otel
from llm_otel.tools._stack import StackPorts, collector_environment
from tests.e2e import _traffic
from tests.faults._outage import EXPORTER_TIMEOUT_ENV, Component, dropped, eventually, services_in
from tests.stack._support import COLLECTOR_DIR, missing_tool

pytestmark = pytest.mark.stack

TOKEN = "s3cr3t-otlp-token-for-tests"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key: with ``cryptography`` if installed, else openssl."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            missing_tool("neither the cryptography package nor the openssl CLI is available to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


@pytest.fixture(scope="module")
def secured_collector(tmp_path_factory: pytest.TempPathFactory, collector_bin: Path) -> Iterator[tuple[str, Path, Path, str]]:
    """(https OTLP gRPC endpoint, CA certificate, traces file, https OTLP HTTP endpoint) of a Collector that requires TLS and TOKEN."""
    run_dir = tmp_path_factory.mktemp("tls-collector")
    cert, key = _self_signed(run_dir)
    tokens = run_dir / "otlp-tokens"
    tokens.write_text(TOKEN + "\n")
    ports = StackPorts.free()
    env = {**os.environ, **collector_environment(ports, run_dir),
           "LLM_OTEL_OTLP_TLS_CERT_FILE": str(cert), "LLM_OTEL_OTLP_TLS_KEY_FILE": str(key),
           "LLM_OTEL_OTLP_TOKEN_FILE": str(tokens)}
    command = [str(collector_bin)] + [f"--config=file:{COLLECTOR_DIR / name}"
                                      for name in ("config.yaml", "file-export.yaml", "otlp-tls-bearer.yaml")]
    collector = Component("collector-tls", command, run_dir, env)
    try:
        collector.wait_healthy(f"http://127.0.0.1:{ports.collector_health}/")
        yield (f"https://127.0.0.1:{ports.otlp_grpc}", cert, run_dir / "traces.jsonl",
               f"https://127.0.0.1:{ports.otlp_http}")
    finally:
        collector.stop()


def _export(endpoint: str, token: str, service: str, reader: InMemoryMetricReader, protocol: str = "grpc") -> None:
    llm_otel.configure(service_name=service, endpoint=endpoint, protocol=protocol, set_global=False,
                       headers={"authorization": f"Bearer {token}"}, metric_readers=[reader],
                       metric_export_interval_ms=300, span_schedule_delay_ms=100)
    try:
        for i in range(5):
            _traffic.openai_chat("gpt-4o-mini", (100 + i, 5, 0))  # never raises, whatever the collector says
        llm_otel.force_flush(5_000)
    finally:
        llm_otel.shutdown()


@pytest.fixture
def certificate_env(secured_collector: tuple[str, Path, Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(secured_collector[1]))
    monkeypatch.setenv(EXPORTER_TIMEOUT_ENV, "3")


@pytest.mark.usefixtures("certificate_env")
def test_right_token_over_tls_is_accepted(secured_collector: tuple[str, Path, Path, str]) -> None:
    endpoint, _, traces, _ = secured_collector
    reader = InMemoryMetricReader()
    _export(endpoint, TOKEN, "faults-tls-good", reader)
    eventually(lambda: "faults-tls-good" in services_in(traces), "the spans to arrive over TLS", timeout=30)
    assert not any(signal in ("spans", "metrics") for signal, _ in dropped(reader)), dropped(reader)


@pytest.mark.usefixtures("certificate_env")
def test_wrong_token_is_rejected_and_counted_as_dropped(secured_collector: tuple[str, Path, Path, str]) -> None:
    endpoint, _, traces, _ = secured_collector
    reader = InMemoryMetricReader()
    _export(endpoint, "not-the-token", "faults-tls-bad", reader)
    counts = dropped(reader)
    assert counts.get(("spans", "export_failed"), 0) == 5, counts
    assert counts.get(("metrics", "export_failed"), 0) >= 1, counts
    time.sleep(1.5)  # past the file exporter's flush interval: nothing of this service may appear
    assert "faults-tls-bad" not in services_in(traces)


@pytest.mark.usefixtures("certificate_env")
def test_plaintext_is_refused_by_the_tls_receiver(
    secured_collector: tuple[str, Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXPORTER_TIMEOUT_ENV, "1")  # a refused handshake is retried until this deadline
    endpoint, _, traces, _ = secured_collector
    reader = InMemoryMetricReader()
    _export(endpoint.replace("https://", "http://"), TOKEN, "faults-tls-plaintext", reader)
    assert dropped(reader).get(("spans", "export_failed"), 0) == 5
    assert "faults-tls-plaintext" not in services_in(traces)


@pytest.mark.usefixtures("certificate_env")
def test_http_protobuf_over_tls_uses_the_configured_ca_despite_requests_env(
    secured_collector: tuple[str, Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE must not replace OTEL_EXPORTER_OTLP_CERTIFICATE for the HTTP exporter."""
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    _, _, traces, http_endpoint = secured_collector
    reader = InMemoryMetricReader()
    _export(http_endpoint, TOKEN, "faults-tls-http", reader, protocol="http/protobuf")
    eventually(lambda: "faults-tls-http" in services_in(traces), "the spans to arrive over HTTPS", timeout=30)
    assert not any(signal in ("spans", "metrics") for signal, _ in dropped(reader)), dropped(reader)
