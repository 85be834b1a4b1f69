"""--ca-cert: the bench talks to an https endpoint signed by a private CA (the front door's), and
refuses one it cannot verify. A real TLS server on loopback, with a CA and certificate made here.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from pathlib import Path

import aiohttp
import pytest
from aimachine.bench.cli import BenchError, main
from aimachine.bench.client import Endpoint, stream_request
from aimachine.bench.runner import server_models
from aiohttp import web
from conftest import serve_app
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MODEL = "tiny"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it, like llm_frontdoor generates."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


async def _models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(body.get("max_tokens", 3)):
        chunk = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    usage = {"prompt_tokens": 3, "completion_tokens": body.get("max_tokens", 3), "total_tokens": 6}
    await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
    return response


async def _with_tls_server(pki: tuple[Path, Path, Path], check):
    app = web.Application()
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki[1], pki[2])
    return await serve_app(app, check, context)


def test_models_and_a_stream_through_tls_with_the_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)

    async def check(base: str):
        endpoint = Endpoint(base, "chat", MODEL, "k" * 40, str(pki[0]))
        models = await server_models(endpoint)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=endpoint.ssl_context())) as s:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 4,
                "stream": True,
            }
            result = await stream_request(s, endpoint, body)
        return models, result

    models, result = asyncio.run(_with_tls_server(pki, check))
    assert models["data"][0]["id"] == MODEL
    assert result.status == 200 and result.ok, result.failure


def test_unverifiable_certificate_is_refused_without_the_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)

    async def check(base: str):
        return await server_models(Endpoint(base, "chat", MODEL, None))

    with pytest.raises(BenchError, match=r"certificate|SSL"):
        asyncio.run(_with_tls_server(pki, check))


def test_ca_cert_that_is_not_a_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "missing.crt")
    code = main(["--base-url", "https://127.0.0.1:9", "--dataset", "coding", "--ca-cert", missing])
    assert code != 0
    assert "--ca-cert" in capsys.readouterr().err
