"""G.711 (PCMU / PCMA) by table lookup: 16-bit PCM to 8-bit codes and back, vectorized.

The tables are FFmpeg's own (built once at import by running 65,536 samples and 256 codes
through PyAV's ``pcm_mulaw`` / ``pcm_alaw`` codecs), so audio encoded here is bit for bit
what aiortc's G.711 encoder would send, and decoding matches its decoder: the WebRTC gateway
(voice/rtc_bridge.py) moves G.711 between the conference bridge and RTP without a codec
context, a resampler or a thread hop per 20 ms frame.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
import numpy.typing as npt

from .audio import Pcm

CODECS = {"PCMU": "pcm_mulaw", "PCMA": "pcm_alaw"}
RATE = 8000


def _tables(codec: str) -> tuple[npt.NDArray[np.uint8], Pcm]:
    every = np.arange(-32768, 32768, dtype=np.int16)
    enc = av.CodecContext.create(codec, "w")
    enc.format, enc.layout, enc.sample_rate = "s16", "mono", RATE  # type: ignore[attr-defined]
    enc.time_base = fractions.Fraction(1, RATE)
    frame = av.AudioFrame.from_ndarray(every.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    coded = b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])  # type: ignore[attr-defined]
    dec = av.CodecContext.create(codec, "r")
    dec.format, dec.layout, dec.sample_rate = "s16", "mono", RATE  # type: ignore[attr-defined]
    packet = av.Packet(bytes(range(256)))
    packet.pts, packet.time_base = 0, fractions.Fraction(1, RATE)
    decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in dec.decode(packet)])  # type: ignore[attr-defined]
    encode = np.frombuffer(coded, dtype=np.uint8)
    if len(encode) != 65536 or len(decoded) != 256:
        raise RuntimeError(f"{codec}: unexpected table sizes {len(encode)}, {len(decoded)}")
    return encode.copy(), decoded.astype(np.int16)


_TABLES = {name: _tables(codec) for name, codec in CODECS.items()}


def encode(pcm: Pcm, codec: str = "PCMU") -> bytes:
    """int16 samples -> G.711 bytes (one per sample). ``codec``: PCMU or PCMA."""
    table = _TABLES[codec.upper()][0]
    return table[pcm.view(np.uint16) ^ 0x8000].tobytes()  # int16 -> index of (sample + 32768)


def decode(data: bytes, codec: str = "PCMU") -> Pcm:
    """G.711 bytes -> int16 samples."""
    return _TABLES[codec.upper()][1][np.frombuffer(data, dtype=np.uint8)]
