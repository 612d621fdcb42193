import socket

import pytest


def test_non_loopback_resolution_fails():
    with pytest.raises(RuntimeError, match="must not use the network"):
        socket.getaddrinfo("huggingface.co", 443)


def test_non_loopback_connect_fails():
    s = socket.socket()
    try:
        with pytest.raises(RuntimeError, match="must not use the network"):
            s.connect(("192.0.2.1", 443))
    finally:
        s.close()


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()
