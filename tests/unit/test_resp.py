"""The hot-path command encoding equals the generic RESP packer."""

from __future__ import annotations

from state.clients.resp import pack


def test_pack_bulk_lengths_are_bytes_not_chars() -> None:
    assert pack("ü") == b"*1\r\n$2\r\n\xc3\xbc\r\n"
    assert pack(b"", 0, -1) == b"*3\r\n$0\r\n\r\n$1\r\n0\r\n$2\r\n-1\r\n"
