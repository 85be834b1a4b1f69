"""Pack the scripts/ package's source into a reproducible sdist-style archive for the host.

Same source, same bytes (sorted entries, fixed times and owners, gzip without a timestamp), so
copying it is idempotent. Writes OUTPUT_DIR/aimachine-<version>.tar.gz only when the bytes differ;
prints {"changed": ..., "path": ...}.
Usage: python pack_source.py SCRIPTS_DIR OUTPUT_DIR
"""

import gzip
import io
import json
import sys
import tarfile
import tomllib
from pathlib import Path

SKIP = ("__pycache__", ".egg-info", ".pyc")


def members(root: Path) -> list[Path]:
    files = [root / "pyproject.toml"]
    files += [p for p in (root / "src" / "aimachine").rglob("*") if p.is_file()]
    return sorted(p for p in files if not any(s in str(p.relative_to(root)) for s in SKIP))


def pack(root: Path, prefix: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in members(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{prefix}/{path.relative_to(root).as_posix()}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def main() -> int:
    root, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    stem = f"{project['name']}-{project['version']}"
    output = out_dir / f"{stem}.tar.gz"
    data = pack(root, stem)
    changed = not (output.exists() and output.read_bytes() == data)
    if changed:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{stem}.tmp"
        tmp.write_bytes(data)
        tmp.replace(output)
    print(json.dumps({"changed": changed, "path": str(output)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
