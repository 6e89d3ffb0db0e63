"""`callcenter transcribe FILE...`: batch transcription of WAV files outside calls (asr/transcribe.py).

    callcenter transcribe calls/*.wav [--engine pocketsphinx|vosk] [--vosk-model PATH_OR_NAME]
                          [--speaker customer|agent] [--language TAG] [--out-dir DIR] [--jobs N]

Each file gets ``<stem>.json`` (asr.transcript's JSON) and ``<stem>.vtt`` (WebVTT) beside it, or in
``--out-dir``. A mono file is one speaker (``--speaker``, default customer); a stereo one is left customer,
right agent. The engine and vosk model default to the settings' ``[asr]`` table; ``--vosk-model`` takes a
model folder or the name of one installed with ``callcenter models install``. ``--jobs N`` decodes in N
worker processes (each loads the model once; pocketsphinx holds the GIL, so threads would not help).

A progress bar over the files goes to stderr (when it is a terminal), a one-line error per file that cannot
be transcribed (truncated, not a WAV...) too, and the batch goes on; a summary table (file, audio seconds,
utterances, words, real-time factor = decode seconds per audio second, status) goes to stdout at the end.
Exit codes: 0 every file transcribed; 1 some failed; 2 nothing was started (bad arguments or model).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from asr.exceptions import AsrError
from asr.transcript import SPEAKERS, Speaker

from .exceptions import ConfigError
from .settings import load_settings, with_overrides


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``transcribe`` to the top-level subcommands (``common`` adds --config/--data-dir)."""
    p = sub.add_parser("transcribe", help="transcribe WAV files to JSON and WebVTT (progress bar, summary table)")
    common(p)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--engine", choices=["pocketsphinx", "vosk"], help="default: [asr] engine of the settings")
    p.add_argument("--vosk-model", help="a vosk model folder, or the name of one under <data_dir>/models")
    p.add_argument("--speaker", choices=list(SPEAKERS), default="customer", help="who speaks in a mono file")
    p.add_argument("--language", help="the language spoken (pocketsphinx: en; vosk: recorded as given, default und)")
    p.add_argument("--out-dir", type=Path, help="write the .json and .vtt files here instead of beside each file")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")


@dataclass(frozen=True, slots=True)
class Row:
    file: str
    seconds: float = 0.0
    utterances: int = 0
    words: int = 0
    rtf: float = 0.0
    error: str = ""                      # "" when transcribed


# -- the work (runs in this process or in a worker) --------------------------------------------------------

_worker: object | None = None


def _init(engine: str, vosk_model: str | None, language: str) -> None:
    global _worker
    from asr.transcribe import FileTranscriber
    _worker = FileTranscriber(engine, vosk_model=Path(vosk_model) if vosk_model else None, language=language)


def _one(path: str, json_out: str, vtt_out: str, speaker: Speaker) -> Row:
    from asr.transcribe import FileTranscriber
    worker = _worker
    assert isinstance(worker, FileTranscriber), "_init() first"
    started = time.perf_counter()
    try:
        t = worker.transcribe_file(path, speaker=speaker)
    except AsrError as exc:
        return Row(path, error=str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
    except Exception as exc:  # one bad file never stops the batch; say what it was
        return Row(path, error=f"{exc.__class__.__name__}: {exc}".splitlines()[0])
    took = time.perf_counter() - started
    try:
        _write(Path(json_out), t.to_json() + "\n")
        _write(Path(vtt_out), t.to_vtt())
    except OSError as exc:
        return Row(path, t.duration_s, error=f"cannot write {exc.filename or json_out}: {exc.strerror or exc}")
    return Row(path, t.duration_s, len(t.utterances), len(t.words()), took / t.duration_s if t.duration_s else 0.0)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- the command -------------------------------------------------------------------------------------------

def _outputs(files: list[Path], out_dir: Path | None) -> list[tuple[Path, Path]]:
    outs = [((out_dir or f.parent) / f"{f.stem}.json", (out_dir or f.parent) / f"{f.stem}.vtt") for f in files]
    seen: dict[Path, Path] = {}
    for f, (j, _) in zip(files, outs, strict=True):
        other = seen.setdefault(j.resolve(), f)
        if other != f:
            raise ConfigError(f"{other} and {f} would both write {j}: use different names or no --out-dir")
    return outs


def _engine(args: argparse.Namespace) -> tuple[str, str | None, str]:
    settings = with_overrides(load_settings(args.config), data_dir=args.data_dir)
    engine = args.engine or settings.asr_engine
    language = args.language or ("en" if engine == "pocketsphinx" else "und")     # und: BCP 47 "undetermined"
    vosk_model: str | None = None
    if engine == "vosk":
        given = args.vosk_model or (str(settings.vosk_model) if settings.vosk_model else None)
        if not given:
            raise ConfigError("--engine vosk needs --vosk-model (a model folder or an installed model's name)")
        from asr.models import find_model, model_problems
        path = Path(given)
        if not path.is_dir() and "/" not in given:
            try:
                path = find_model(settings.data_dir, given)
            except AsrError as exc:
                raise ConfigError(str(exc)) from None
        if not path.is_dir():
            raise ConfigError(f"vosk model folder {path} does not exist")
        if model_problems(path):
            raise ConfigError(f"{path} is not a vosk model folder ({', '.join(model_problems(path))})")
        vosk_model = str(path)
    elif language.lower().split("-")[0].split("_")[0] != "en":
        raise ConfigError(f"pocketsphinx only has an English model, not {language!r}: use --engine vosk")
    return engine, vosk_model, language


def handler(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if args.out_dir is not None and not args.out_dir.is_dir():
        raise ConfigError(f"--out-dir {args.out_dir} is not a directory")
    files: list[Path] = list(args.files)
    outs = _outputs(files, args.out_dir)
    engine, vosk_model, language = _engine(args)
    jobs = min(args.jobs, len(files))
    rows: list[Row | None] = [None] * len(files)
    started = time.perf_counter()
    # The bar only on a terminal (and only then: even a disabled tqdm starts a monitor thread).
    bar = tqdm(total=len(files), desc="transcribing", unit="file", file=sys.stderr) if sys.stderr.isatty() else None

    def done(i: int, row: Row) -> None:
        rows[i] = row
        if row.error:
            message = f"callcenter: error: {row.error}"
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr, flush=True)
        if bar is not None:
            bar.update(1)

    try:
        try:
            if jobs == 1:
                _init(engine, vosk_model, language)
                for i, f in enumerate(files):
                    done(i, _one(str(f), str(outs[i][0]), str(outs[i][1]), args.speaker))
            else:
                with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init,
                                         initargs=(engine, vosk_model, language)) as pool:
                    futures: dict[Future[Row], int] = {
                        pool.submit(_one, str(f), str(outs[i][0]), str(outs[i][1]), args.speaker): i
                        for i, f in enumerate(files)}
                    from concurrent.futures import as_completed
                    for fut in as_completed(futures):
                        done(futures[fut], fut.result())
        except BrokenProcessPool:
            raise ConfigError(f"the {engine} workers could not start or died (is the model loadable?)") from None
        except AsrError as exc:
            raise ConfigError(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    final = [r if r is not None else Row(str(files[i]), error="not transcribed") for i, r in enumerate(rows)]
    _table(final, wall, jobs)
    return 1 if any(r.error for r in final) else 0


def _table(rows: list[Row], wall: float, jobs: int) -> None:
    width = max(4, *(len(r.file) for r in rows))
    print(f"{'FILE':<{width}}  {'SECONDS':>8}  {'UTTERANCES':>10}  {'WORDS':>6}  {'RTF':>6}  STATUS")
    for r in rows:
        if r.error:
            print(f"{r.file:<{width}}  {r.seconds or '-':>8}  {'-':>10}  {'-':>6}  {'-':>6}  error: {r.error}")
        else:
            print(f"{r.file:<{width}}  {r.seconds:>8.2f}  {r.utterances:>10}  {r.words:>6}  {r.rtf:>6.3f}  ok")
    ok = [r for r in rows if not r.error]
    audio = sum(r.seconds for r in ok)
    print(f"{len(ok)} of {len(rows)} files transcribed, {audio:.1f} s of audio in {wall:.1f} s "
          f"({jobs} job{'s' if jobs != 1 else ''}; {audio / wall if wall else 0:.1f} audio seconds per second)")
