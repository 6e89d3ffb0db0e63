from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.exceptions import ConfigError
from callcenter.settings import check_data_dir, load_settings, with_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_default_config_file() -> None:
    s = load_settings(ROOT / "config" / "callcenter.toml")
    assert s.engine.sip_port == 5060 and s.http_port == 8080
    assert s.engine.codecs == ("PCMU/8000", "PCMA/8000") and s.engine.clock_rate == 8000
    assert s.default_flow == ROOT / "config" / "flows" / "demo.yaml"
    assert s.transfer_allow == () and s.inband_dtmf == "auto" and s.prompt_voices["zh"] == "cmn"
    o = with_overrides(s, data_dir=Path("/x"), host="127.0.0.1", sip_port=5070, http_port=9000)
    assert (o.data_dir, o.engine.host, o.http_host, o.engine.sip_port, o.http_port) == (
        Path("/x"), "127.0.0.1", "127.0.0.1", 5070, 9000)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[sip]\nclock_rate = 11025\n", "clock_rate"),
        ("[sip]\nmax_calls = 4096\n", "1..512"),
        ("[sip]\ntransports = ['tls']\n", "unsupported 'tls'"),
        ("[server]\nport = 1\n", "unknown key [server] port"),
        ("[server]\nhttp_port = true\n", "expected int"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, words: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_settings(cfg)


def test_data_dir_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_data_dir(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        check_data_dir(tmp_path / "file")
    assert check_data_dir(tmp_path) == tmp_path.resolve()
