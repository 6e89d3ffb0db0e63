/*
 * media_tap.i - SWIG interface of the callcenter media tap (see media_tap.hpp).
 *
 * build.sh appends `%include "media_tap.i"` to a copy of pjproject's pjsua2.i, so the tap
 * classes live in the same `pjsua2` module as AudioMedia: pjsua2.MediaTap,
 * pjsua2.MediaTapStream, pjsua2.MediaTapHub, pjsua2.MediaTapStats.
 *
 * PCM goes through the buffer protocol, without copies in the binding: read() fills a
 * writable buffer (a numpy int16 array, a bytearray...) and write() takes any contiguous
 * buffer (bytes, numpy int16...). Sizes are in 16-bit samples. The caller must keep the
 * buffer alive and unresized for the call (the binding releases the GIL during it).
 */
%{
#include "media_tap.hpp"
%}

%include "pybuffer.i"

// The module is built with -threads (GIL released around every call). Non-blocking calls that
// only take a ring's mutex for a memcpy keep the GIL: no GIL hand-off per 20 ms of audio. The
// C++ side never calls into Python, so holding the GIL there cannot deadlock.
%feature("nothread") callcenter::MediaTapStream::lastReadPosition;
%feature("nothread") callcenter::MediaTapStream::lastReadTime;
%feature("nothread") callcenter::MediaTapStream::write;
%feature("nothread") callcenter::MediaTapStream::endWrite;
%feature("nothread") callcenter::MediaTapStream::flushSpeak;
%feature("nothread") callcenter::MediaTapStream::speakBuffered;
%feature("nothread") callcenter::MediaTapStream::setHub;
%feature("nothread") callcenter::MediaTapStream::getStats;
%feature("nothread") callcenter::MediaTapStream::getClockRate;
%feature("nothread") callcenter::MediaTapStream::isClosed;
%feature("nothread") callcenter::MediaTapHub::fileno;
%feature("nothread") callcenter::MediaTapHub::readReady;
%pybuffer_mutable_binary(short *pcmOut, size_t outSamples);  // read(), MediaTapHub::readReady()
%pybuffer_mutable_binary(long long *metaOut, size_t metaCount);  // MediaTapHub::readReady()
%pybuffer_binary(const short *pcmIn, size_t inSamples);

%include "media_tap.hpp"
