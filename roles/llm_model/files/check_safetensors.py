#!/usr/bin/python3
"""Is every *.safetensors file in a model directory whole? (stdlib only; runs on the host)

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
byte range, then the data; a whole file ends exactly at the last range. A download cut short (or
a disk that filled up) leaves a shorter file: found here without hashing gigabytes.
Prints a JSON list of the files that are not whole ({"file", "size", "expected"|"error"});
exit 0 when the list is empty, 1 otherwise.
"""

import json
import struct
import sys
from pathlib import Path


def check(path: Path) -> dict | None:
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                return {"file": path.name, "size": size, "error": "header longer than the file"}
            header = json.loads(handle.read(length))
    except (struct.error, ValueError) as error:
        return {"file": path.name, "size": size, "error": f"unreadable header: {error}"}
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + length + max(ends, default=0)
    return None if size == expected else {"file": path.name, "size": size, "expected": expected}


def main() -> int:
    directory = Path(sys.argv[1])
    bad = [result for path in sorted(directory.glob("*.safetensors")) if (result := check(path))]
    print(json.dumps(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
