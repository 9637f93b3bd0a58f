"""Memory quantities of Bob's quotas: Bob's notation, one parser."""

from __future__ import annotations

import pytest

from bob_common.quantities import MAX_BYTES, format_memory, parse_memory


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1048576", 1 << 20),
        ("1024Ki", 1 << 20),
        ("512Mi", 512 << 20),
        ("1Gi", 1 << 30),
        ("2Ti", 2 << 40),
        ("1Pi", 1 << 50),
        ("1Ei", 1 << 60),
        # As in Bob, a suffix without "i" is the same power of 1024: "512M" is "512Mi".
        ("512M", 512 << 20),
        ("1K", 1024),
        ("3G", 3 << 30),
        ("1T", 1 << 40),
        ("1P", 1 << 50),
        ("7E", 7 << 60),
    ],
)
def test_a_quantity_means_its_digits_times_its_suffix(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Mi",
        "512 Mi",
        " 512Mi",
        "512mi",
        "512m",
        "512MB",
        "512Mib",
        "1.5Gi",
        "1e9",
        "-1Gi",
        "+1Gi",
        "512ki",
        "1k",
        "0x10",
        "512X",
        "١٢",
    ],
)
def test_anything_else_is_refused_naming_the_text_and_the_notation(text):
    with pytest.raises(ValueError) as refused:
        parse_memory(text)
    assert str(refused.value) == (
        f"{text!r} is not a memory quantity: digits with a suffix K, M, G, T, P or E "
        "(with or without i; powers of 1024), e.g. '512Mi'"
    )


def test_a_quantity_beyond_what_docker_can_hold_is_refused():
    assert parse_memory(str(MAX_BYTES)) == MAX_BYTES
    with pytest.raises(ValueError, match="'8Ei' is too large"):
        parse_memory("8Ei")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (64 << 20, "64 MiB"),
        (1 << 30, "1 GiB"),
        (1536 << 20, "1536 MiB"),
        (1024, "1 KiB"),
        (512_000_000, "512 MB"),
        (1000, "1 kB"),
        (1001, "1001 bytes"),
        (0, "0 bytes"),
    ],
)
def test_a_size_reads_in_the_largest_unit_that_divides_it(size, text):
    assert format_memory(size) == text
