"""Vosk model management under ``<data_dir>/models``: list, install from an archive or URL, verify.

    install("vosk-model-small-en-us-0.15.zip", data_dir)            # or an http(s) URL; name from the archive
    list_models(data_dir)                                            # [InstalledModel(name, path, ...)]
    verify(data_dir, "vosk-model-small-en-us-0.15")                 # re-checksum, then load it in a subprocess

Installing: the archive (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz; recognized by its content, not its
name) is downloaded with a progress bar when it is a URL (to ``<models>/.download-*``), its SHA-256 computed
and compared with ``sha256`` when given, then extracted into a temporary folder beside the models. Every
member is checked first: absolute paths, ``..`` components, links, devices and a total size beyond
``MAX_UNPACKED`` are refused, so an archive can never write outside its folder. The folder holding the model
(``am/final.mdl``, ``conf/``, ``graph/`` with HCLG.fst or HCLr.fst: the layout of every vosk model; it may be
the archive's top folder or nested) is moved to ``<models>/<name>``, and the manifest
(``<models>/manifest.json``) records the archive's SHA-256, a SHA-256 over the installed files (their paths and
contents), the source and the time. With ``load_check`` the model is then loaded once by vosk in a child
process (a corrupt model can crash the process that loads it); a failure removes it again. Any failure leaves
no partial model behind and raises ``ModelError`` with one line saying why.

Verifying recomputes the installed files' SHA-256, compares it with the manifest, and loads the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlparse

from asr.exceptions import ModelError

MANIFEST = "manifest.json"
MAX_UNPACKED = 16 * 1024 ** 3          # bytes: an archive claiming more is refused (zip bombs)
LOAD_TIMEOUT = 600.0                   # seconds for the child process loading a model
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class InstalledModel:
    name: str
    path: Path
    sample_rate: int = 16000
    archive_sha256: str = ""           # "" when installed by hand (not in the manifest)
    files_sha256: str = ""
    source: str = ""
    installed_at: str = ""
    size_bytes: int = 0
    files: int = 0

    @property
    def in_manifest(self) -> bool:
        return bool(self.files_sha256)


@dataclass(frozen=True, slots=True)
class Verification:
    name: str
    path: Path
    ok: bool
    problems: tuple[str, ...] = field(default_factory=tuple)
    load_seconds: float | None = None


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def model_problems(path: Path) -> list[str]:
    """What keeps ``path`` from being a vosk model folder (empty: it is one)."""
    problems = []
    if not (path / "am" / "final.mdl").is_file():
        problems.append("no am/final.mdl")
    if not (path / "conf").is_dir():
        problems.append("no conf/")
    graph = path / "graph"
    if not graph.is_dir():
        problems.append("no graph/")
    elif not ((graph / "HCLG.fst").is_file() or (graph / "HCLr.fst").is_file()):
        problems.append("graph/ has neither HCLG.fst nor HCLr.fst")
    return problems


def _sample_rate(path: Path) -> int:
    conf = path / "conf" / "mfcc.conf"
    if conf.is_file():
        m = re.search(r"--sample-frequency=(\d+)", conf.read_text(errors="replace"))
        if m:
            return int(m.group(1))
    return 16000


# -- manifest ---------------------------------------------------------------------------------------------

def _read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({_line(exc)}); fix or remove it") from None
    models = data.get("models") if isinstance(data, dict) else None
    return {k: v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}


def _write_manifest(root: Path, models: dict[str, dict[str, Any]]) -> None:
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"models": models}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def list_models(data_dir: Path) -> list[InstalledModel]:
    """Every model folder under ``<data_dir>/models`` (with its manifest entry when it has one), by name."""
    root = models_dir(data_dir)
    if not root.is_dir():
        return []
    manifest = _read_manifest(root)
    out = []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        m = manifest.get(child.name, {})
        out.append(InstalledModel(
            name=child.name, path=child, sample_rate=_sample_rate(child),
            archive_sha256=str(m.get("archive_sha256", "")), files_sha256=str(m.get("files_sha256", "")),
            source=str(m.get("source", "")), installed_at=str(m.get("installed_at", "")),
            size_bytes=int(m.get("size_bytes", 0)), files=int(m.get("files", 0))))
    return out


def find_model(data_dir: Path, name: str) -> Path:
    """The folder of the installed model ``name``; ModelError naming the installed ones if there is none."""
    path = models_dir(data_dir) / name
    if _NAME.match(name) and path.is_dir():
        return path
    names = ", ".join(m.name for m in list_models(data_dir)) or "none"
    raise ModelError(f"no model {name!r} under {models_dir(data_dir)} (installed: {names})")


def files_sha256(path: Path) -> tuple[str, int, int]:
    """(SHA-256 over every file's relative path and contents in path order, total bytes, file count)."""
    h = hashlib.sha256()
    size = count = 0
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        fh = hashlib.sha256()
        with f.open("rb") as src:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                fh.update(chunk)
                size += len(chunk)
        h.update(f"{rel}\0{fh.hexdigest()}\n".encode())
        count += 1
    return h.hexdigest(), size, count


# -- fetching ---------------------------------------------------------------------------------------------

class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _bar(total: int | None, desc: str, progress: bool) -> Any:
    if not progress:
        return _NoBar()                  # (a disabled tqdm still starts its monitor thread)
    from tqdm import tqdm  # type: ignore[import-untyped]
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)


def _line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _hash_file(path: Path, progress: bool) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f, _bar(path.stat().st_size, f"checksum {path.name}", progress) as bar:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _download(url: str, dest: Path, progress: bool, timeout: float) -> str:
    import httpx

    h = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as r:
            if r.status_code != 200:
                raise ModelError(f"download of {url} failed: HTTP {r.status_code} {r.reason_phrase}")
            length = r.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            got = 0
            with dest.open("wb") as out, _bar(total, f"download {Path(urlparse(url).path).name}", progress) as bar:
                for chunk in r.iter_bytes(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            if total is not None and got != total:
                raise ModelError(f"download of {url} was cut short: {got} of {total} bytes")
    except httpx.HTTPError as exc:
        raise ModelError(f"download of {url} failed: {exc.__class__.__name__}: {_line(exc)}") from None
    return h.hexdigest()


# -- archives ---------------------------------------------------------------------------------------------

def _safe_parts(name: str, archive: str) -> tuple[str, ...]:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise ModelError(f"{archive}: refused: member {name!r} has an absolute path")
    parts = tuple(x for x in p.parts if x not in ("", "."))
    if ".." in parts:
        raise ModelError(f"{archive}: refused: member {name!r} points outside the archive's folder (..)")
    return parts


def _members(archive: Path) -> Iterator[tuple[tuple[str, ...], bool, int, Any]]:
    """(path parts, is_dir, size, opener) of every member after the safety checks; raises ModelError."""
    label = archive.name
    with archive.open("rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelError(f"{label}: corrupt zip archive ({_line(exc)})") from None
        with zf:
            infos = zf.infolist()
            for info in infos:
                kind = stat.S_IFMT(info.external_attr >> 16)
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise ModelError(f"{label}: refused: member {info.filename!r} is a link or special file")
            for info in infos:
                yield _safe_parts(info.filename, label), info.is_dir(), info.file_size, \
                    (lambda i=info: zf.open(i))
        return
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelError(f"{label}: not a zip or tar archive, or a corrupt one ({_line(exc)})") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            if not (m.isfile() or m.isdir()):
                raise ModelError(f"{label}: refused: member {m.name!r} is a link or special file")
        for m in members:
            yield _safe_parts(m.name, label), m.isdir(), m.size, (lambda m=m: tf.extractfile(m))


def _extract(archive: Path, dest: Path) -> None:
    label = archive.name
    try:
        entries = list(_members(archive))            # every member checked before anything is written
    except (tarfile.TarError, EOFError, zlib.error, zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{label}: corrupt or truncated archive ({_line(exc)})") from None
    total = sum(size for _, _, size, _ in entries)
    if total > MAX_UNPACKED:
        raise ModelError(f"{label}: refused: it would unpack to {total / 1024 ** 3:.1f} GiB "
                         f"(limit {MAX_UNPACKED / 1024 ** 3:.0f} GiB)")
    free = shutil.disk_usage(dest).free
    if total > free:
        raise ModelError(f"{label}: needs {total / 1024 ** 2:.0f} MiB, only {free / 1024 ** 2:.0f} MiB free in {dest}")
    for parts, is_dir, _, opener in _members(archive):    # again, with the archive open while we copy
        if not parts:
            continue
        target = dest.joinpath(*parts)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            src: IO[bytes] | None = opener()
            if src is None:
                raise ModelError(f"{label}: member {'/'.join(parts)} cannot be read")
            with src, target.open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        except (tarfile.TarError, EOFError, zlib.error, zipfile.BadZipFile, OSError) as exc:
            why = f"{exc.__class__.__name__}: {_line(exc)}"
            raise ModelError(f"{label}: corrupt or truncated archive ({why})") from None


def _model_root(tree: Path) -> Path | None:
    """The folder in ``tree`` that holds a vosk model (the shallowest), or None."""
    candidates = [tree] + sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
    for c in candidates:
        if not model_problems(c):
            return c
    return None


@contextmanager
def _scratch(root: Path, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _default_name(source: str) -> str:
    base = Path(unquote(urlparse(source).path)).name if re.match(r"^https?://", source) else Path(source).name
    for ext in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar"):
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return base


def install(source: str | Path, data_dir: Path, *, name: str | None = None, sha256: str | None = None,
            progress: bool = True, load_check: bool = True, timeout: float = 60.0) -> InstalledModel:
    """Install the vosk model in an archive file or at an http(s) URL as ``<data_dir>/models/<name>``."""
    src = str(source)
    is_url = bool(re.match(r"^https?://", src, re.I))
    if not is_url and re.match(r"^[a-z][a-z0-9+.-]*://", src, re.I):
        raise ModelError(f"{src}: only local files and http(s):// URLs can be installed")
    expected = sha256.strip().lower() if sha256 else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ModelError(f"--sha256 {sha256!r} is not a SHA-256 (64 hex digits)")
    root = models_dir(data_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create {root}: {exc.strerror or exc}") from None
    with _scratch(root, ".install-") as work:
        if is_url:
            archive = work / "download"
            digest = _download(src, archive, progress, timeout)
        else:
            archive = Path(src)
            if not archive.is_file():
                raise ModelError(f"{archive}: no such file")
            digest = _hash_file(archive, progress)
        if expected is not None and digest != expected:
            raise ModelError(f"{src}: checksum mismatch: expected sha256 {expected}, got {digest}; nothing installed")
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _extract(archive, unpacked)
        model_root = _model_root(unpacked)
        if model_root is None:
            raise ModelError(f"{src}: no vosk model in this archive (looked for a folder with am/final.mdl, "
                             f"conf/ and graph/)")
        final = name or (model_root.name if model_root != unpacked else _default_name(src))
        if not _NAME.match(final):
            raise ModelError(f"model name {final!r} is not allowed (letters, digits, . _ -; give --name)")
        target = root / final
        if target.exists():
            raise ModelError(f"a model named {final!r} is already installed in {target}; remove it or give --name")
        tree, size, count = files_sha256(model_root)
        os.replace(model_root, target)
    if load_check:
        problem, _ = _load_in_child(target)
        if problem:
            shutil.rmtree(target, ignore_errors=True)
            raise ModelError(f"{src}: {problem}; nothing installed")
    manifest = _read_manifest(root)
    manifest[final] = {"archive_sha256": digest, "files_sha256": tree, "source": src if is_url else str(
        Path(src).resolve()), "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "size_bytes": size, "files": count}
    _write_manifest(root, manifest)
    return next(m for m in list_models(data_dir) if m.name == final)


def _load_in_child(path: Path) -> tuple[str, float]:
    """("" or why vosk cannot load the model at ``path``, seconds the load took), in a child process."""
    code = ("import sys, time, vosk\nvosk.SetLogLevel(-1)\nt = time.perf_counter()\n"
            "vosk.Model(sys.argv[1])\nprint(time.perf_counter() - t)\n")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                           timeout=LOAD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"vosk did not finish loading the model within {LOAD_TIMEOUT:.0f} s", 0.0
    if r.returncode != 0:
        lines = [line for line in (r.stderr or "").splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit status {r.returncode}"
        return f"vosk cannot load the model ({why[:200]})", 0.0
    try:
        return "", float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "", 0.0


def verify(data_dir: Path, name: str | None = None, *, load: bool = True) -> list[Verification]:
    """Check one installed model (or all): layout, the manifest's SHA-256 of its files, and a load by vosk."""
    models = list_models(data_dir)
    if name is not None:
        find_model(data_dir, name)
        models = [m for m in models if m.name == name]
    out = []
    for m in models:
        problems = [f"not a vosk model folder: {', '.join(p)}" for p in [model_problems(m.path)] if p]
        if not m.in_manifest:
            problems.append("not in the manifest (installed by hand): no checksum to compare")
        else:
            tree, _, _ = files_sha256(m.path)
            if tree != m.files_sha256:
                problems.append(f"files changed since installation (sha256 {tree[:12]}..., "
                                f"manifest {m.files_sha256[:12]}...)")
        seconds = None
        if load and not model_problems(m.path):
            why, seconds = _load_in_child(m.path)
            if why:
                problems.append(why)
                seconds = None
        ok = not [p for p in problems if not p.startswith("not in the manifest")]
        out.append(Verification(m.name, m.path, ok, tuple(problems), seconds))
    return out
