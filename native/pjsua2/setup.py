"""Packages the SWIG-generated pjsua2 binding as a wheel (run by build.sh, not by hand).

The extension is pjproject's pjsua2 wrapper plus the project's media tap (tap/media_tap.cpp) and
SIP guard (guard/sip_guard.cpp, guard/call_media.cpp), copied beside this file by build.sh.

PJDIR names a configured and compiled pjproject tree; the compiler and linker flags come
from pjproject's own build variables, exactly as its swig/python/helper.mak prints them.
"""

import os
import subprocess
import tempfile

from setuptools import Extension, setup

PJDIR = os.environ["PJDIR"]
HERE = os.path.dirname(os.path.abspath(__file__))


def _make_var(name: str) -> list[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".mak", delete=False) as mak:
        mak.write(f"include {PJDIR}/build.mak\ninclude {PJDIR}/build/common.mak\n")
        mak.write(f"print:\n\t@echo $({name})\n")
    try:
        out = subprocess.run(
            ["make", "--no-print-directory", "-f", mak.name, "print"],
            cwd=PJDIR, check=True, capture_output=True, text=True,
        ).stdout
    finally:
        os.unlink(mak.name)
    return out.split()


cflags = _make_var("PJ_CXXFLAGS") + _make_var("CFLAGS")
ldall = _make_var("PJ_LDXXFLAGS") + _make_var("LDFLAGS") + _make_var("PJ_LDXXLIBS") + _make_var("LIBS")
libraries = [t[2:] for t in ldall if t.startswith("-l")]
ldflags = [t for t in ldall if not t.startswith("-l")]

setup(
    name="pjsua2",
    version="2.12.1+callcenter",
    description="pjsua2 Python binding built by the callcenter project (PJSUA_MAX_CALLS 512)",
    license="GPL-2.0-or-later",
    ext_modules=[
        Extension(
            "_pjsua2",
            ["pjsua2_wrap.cpp", "media_tap.cpp", "sip_guard.cpp", "call_media.cpp"],
            include_dirs=[HERE],
            libraries=libraries,
            extra_compile_args=[*cflags, "-Wno-deprecated-declarations"],
            extra_link_args=ldflags,
        )
    ],
    py_modules=["pjsua2"],
)
