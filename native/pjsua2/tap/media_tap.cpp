/*
 * media_tap.cpp - the callcenter project's live-audio tap for pjsua2 (GPL-2.0-or-later).
 * Design, threading and counters: see media_tap.hpp; the state it shares: tap_state.hpp.
 */
#include "media_tap.hpp"
#include "tap_state.hpp"

#define THIS_FILE "media_tap.cpp"

namespace callcenter
{

using pj::Error;
using std::string;

/* ---- the pjmedia port: media clock thread ------------------------------------------- */

/* Silence for the ticks the bridge has nothing for us (room for 48 kHz at 20 ms, twice). */
static const short SILENCE[1920] = {0};

static pj_status_t tap_put_frame(pjmedia_port *port, pjmedia_frame *frame)
{
    PortState *ps = static_cast<PortState *>(port->port_data.pdata);
    /* A tick with nothing to hear (the call's stream left the bridge: held with a=inactive,
     * or between two streams of a re-INVITE) is a NONE frame. The recording and the taps keep
     * the call's timeline: they get silence, not a gap (pjmedia's WAV writer skips NONE). */
    pjmedia_frame quiet;
    if (frame->type != PJMEDIA_FRAME_TYPE_AUDIO || frame->buf == NULL || frame->size < 2) {
        quiet = *frame;
        quiet.type = PJMEDIA_FRAME_TYPE_AUDIO;
        quiet.buf = const_cast<short *>(SILENCE);
        quiet.size = std::min<size_t>(PJMEDIA_PIA_SPF(&port->info) * sizeof(short), sizeof(SILENCE));
        frame = &quiet;
    }
    /* ps->mu is held throughout: the stream cannot be swapped or freed meanwhile, so no
     * reference is taken (an atomic on a cache line this thread last touched a tick ago). */
    std::lock_guard<std::mutex> plk(ps->mu);
    TapState *st = ps->listener.get();
    if (st) {  /* its lines are needed below: fetch them while the recorder works */
        __builtin_prefetch(st, 1);
        __builtin_prefetch(reinterpret_cast<const char *>(st) + 64, 1);
        __builtin_prefetch(reinterpret_cast<const char *>(st) + 128, 1);
    }
    if (ps->wav) {
        /* A paused recording (MediaTap::pauseRecording; the flag lives in the port's ldata,
         * under ps->mu) records silence of the frame's length: the file keeps the call's
         * timeline, and the stream below still hears the real audio. */
        if (port->port_data.ldata && frame != &quiet) {
            quiet = *frame;
            quiet.buf = const_cast<short *>(SILENCE);
            quiet.size = std::min<size_t>(frame->size, sizeof(SILENCE));
            pjmedia_port_put_frame(ps->wav, &quiet);
        } else {
            pjmedia_port_put_frame(ps->wav, frame);
        }
    }
    if (!st)
        return PJ_SUCCESS;
    const bool audio = frame->type == PJMEDIA_FRAME_TYPE_AUDIO && frame->buf != NULL && frame->size >= 2;
    const unsigned long long ts = frame->timestamp.u64;
    std::shared_ptr<TapHubState> hub;
    bool wake = false, signal = false;
    {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->closed)
            return PJ_SUCCESS;
        TapHubState *h = NULL;
        if (st->hasHub && (hub = st->hub.lock()))
            h = hub.get();
        /* Every frame, audio or not: the hub follows the bridge's ticks. A tick's first frame
         * enters it (and reads the clock for every member); the others skip the hub's lock. */
        if (h && ts != h->tick.load(std::memory_order_relaxed)) {
            std::lock_guard<std::mutex> hk(h->mu);
            signal = h->enterTick(ts);
        }
        if (audio) {
            const short *src = static_cast<const short *>(frame->buf);
            const size_t n = frame->size / sizeof(short);
            st->lastPutTime = h ? h->tickTime : monotonicNow();
            st->tsHead = ts + n;
            st->tsKnown = true;
            wake = st->waiters > 0;
            if (h && !st->alignPending && st->listen.fill() + (long long)n == st->hubChunk) {
                /* The usual frame of a hub's stream that completes a chunk: straight to the hub. */
                std::lock_guard<std::mutex> hk(h->mu);
                st->handOverWith(h, src, (long long)n);
                signal = h->frame(ts, true) || signal;
            } else {
                long long dropped = st->listen.push(src, n);
                if (dropped) {
                    st->listenDropped += dropped;
                    st->listenOverflows++;
                }
                st->align();
                if (h && st->listen.fill() >= st->hubChunk) {
                    std::lock_guard<std::mutex> hk(h->mu);
                    signal = h->frame(ts, st->handOver(h)) || signal;
                }
            }
        }
    }
    if (wake)
        st->cv.notify_all();
    if (signal)
        hub->signal();
    return PJ_SUCCESS;
}

static pj_status_t tap_get_frame(pjmedia_port *port, pjmedia_frame *frame)
{
    PortState *ps = static_cast<PortState *>(port->port_data.pdata);
    std::shared_ptr<TapState> sp;
    {
        std::lock_guard<std::mutex> lk(ps->mu);
        sp = ps->listener;
    }
    TapState *st = sp.get();
    const size_t need = frame->size / sizeof(short);
    if (!st) {
        frame->type = PJMEDIA_FRAME_TYPE_NONE;
        frame->size = 0;
        return PJ_SUCCESS;
    }
    std::lock_guard<std::mutex> lk(st->mu);
    const long long avail = st->speak.fill();
    if (need == 0 || frame->buf == NULL || (avail == 0 && !st->speaking) || st->closed) {
        frame->type = PJMEDIA_FRAME_TYPE_NONE;
        frame->size = 0;
        return PJ_SUCCESS;
    }
    const size_t n = (size_t)std::min<long long>(avail, (long long)need);
    short *out = static_cast<short *>(frame->buf);
    st->speak.pop(out, n);
    st->speakPlayed += (long long)n;
    if (n > 0 && !st->playing) {
        st->playing = true;
        st->speakStartedAt = monotonicNow();
    }
    if (n < need) {
        st->playing = false;
        std::memset(out + n, 0, (need - n) * sizeof(short));
        if (!st->ending) {
            st->speakUnderflows++;
            st->speakSilence += (long long)(need - n);
        }
        st->speaking = false;
        st->ending = false;
    }
    frame->type = PJMEDIA_FRAME_TYPE_AUDIO;
    frame->size = need * sizeof(short);
    return PJ_SUCCESS;
}

/* ---- MediaTapStats / MediaTapHub ---------------------------------------------------- */

MediaTapStats::MediaTapStats()
: clockRate(0), listenSamples(0), listenRead(0), listenDropped(0), listenOverflows(0),
  listenBuffered(0), speakWritten(0), speakPlayed(0), speakDropped(0), speakOverflows(0),
  speakFlushed(0), speakUnderflows(0), speakSilence(0), speakBuffered(0), speakStartedAt(0),
  closed(false)
{
}

MediaTapHub::MediaTapHub() : state(std::make_shared<TapHubState>())
{
}

MediaTapHub::~MediaTapHub()
{
}

int MediaTapHub::fileno() const
{
    return state->efd;
}

int MediaTapHub::readReady(short *pcmOut, size_t outSamples, long long *metaOut, size_t metaCount)
{
    if (!pcmOut || !metaOut)
        return 0;
    const size_t maxRecords = metaCount / READY_FIELDS;
    TapHubState *h = state.get();
    std::vector<short> buf;
    std::deque<HubRecord> recs;
    size_t head = 0;
    bool swapped = false, leftover = false;
    {
        std::lock_guard<std::mutex> lk(h->mu);
        if (h->records.empty() || maxRecords == 0)
            return 0;
        if (h->records.size() <= maxRecords && (size_t)h->pending <= outSamples) {
            /* The usual pass: take both buffers as they are, copy outside the lock. */
            buf.swap(h->pcm);
            h->pcm.swap(h->spare);
            recs.swap(h->records);
            head = h->pcmHead;
            h->pcmHead = 0;
            h->pending = 0;
            swapped = true;
        } else {  /* what fits now; the rest stays for the next call */
            size_t used = 0, count = 0;
            while (count < h->records.size() && count < maxRecords
                   && used + (size_t)h->records[count].samples <= outSamples)
                used += (size_t)h->records[count++].samples;
            recs.assign(h->records.begin(), h->records.begin() + (std::ptrdiff_t)count);
            h->records.erase(h->records.begin(), h->records.begin() + (std::ptrdiff_t)count);
            std::memcpy(pcmOut, h->pcm.data() + h->pcmHead, used * sizeof(short));
            h->pcmHead += used;
            h->pending -= (long long)used;
            leftover = true;
        }
        for (const HubRecord &r : recs) {
            if (!r.ended)
                continue;
            auto it = h->members.find(r.key);
            if (it != h->members.end()) {  /* a closed stream, drained: the hub forgets it */
                h->capacity -= it->second.capacity;
                h->members.erase(it);
            }
        }
    }
    size_t used = 0;
    int records = 0;
    for (const HubRecord &r : recs) {
        long long *rec = metaOut + (size_t)records * READY_FIELDS;
        rec[0] = r.key;
        rec[1] = (long long)used;
        rec[2] = r.samples;
        rec[3] = r.position;
        rec[4] = r.timeNs;
        rec[5] = r.ended ? 1 : 0;
        used += (size_t)r.samples;
        ++records;
    }
    if (swapped) {
        std::memcpy(pcmOut, buf.data() + head, used * sizeof(short));
        buf.clear();  /* keeps its capacity: the next swap reuses it */
        std::lock_guard<std::mutex> lk(h->mu);
        if (h->spare.capacity() < buf.capacity())
            h->spare.swap(buf);
    }
    if (leftover)
        h->signal();
    return records;
}

/* ---- MediaTapStream: any thread ----------------------------------------------------- */

MediaTapStream::MediaTapStream()
{
}

MediaTapStream::~MediaTapStream()
{
}

int MediaTapStream::read(short *pcmOut, size_t outSamples, unsigned chunkSamples, int timeoutMs)
{
    TapState *st = state.get();
    if (!st)
        return -1;
    if (!pcmOut || outSamples == 0)
        return 0;
    const long long chunk = (chunkSamples == 0 || chunkSamples > outSamples)
                            ? (long long)outSamples : (long long)chunkSamples;
    std::unique_lock<std::mutex> lk(st->mu);
    if (st->listen.fill() < chunk && !st->closed && timeoutMs != 0) {
        auto ready = [st, chunk] { return st->listen.fill() >= chunk || st->closed; };
        st->waiters++;
        if (timeoutMs < 0)
            st->cv.wait(lk, ready);
        else
            st->cv.wait_for(lk, std::chrono::milliseconds(timeoutMs), ready);
        st->waiters--;
    }
    const long long fill = st->listen.fill();
    long long n = 0;
    if (fill >= chunk)
        n = std::min(fill, (long long)outSamples) / chunk * chunk;
    else if (st->closed)
        n = std::min(fill, (long long)outSamples);  /* a closed tap's tail: may be short */
    if (n == 0)
        return st->closed ? -1 : 0;
    st->markRead();
    st->listen.pop(pcmOut, (size_t)n);
    st->listenRead += n;
    return (int)n;
}

long long MediaTapStream::lastReadPosition() const
{
    if (!state)
        return 0;
    std::lock_guard<std::mutex> lk(state->mu);
    return state->lastReadPos;
}

double MediaTapStream::lastReadTime() const
{
    if (!state)
        return 0;
    std::lock_guard<std::mutex> lk(state->mu);
    return state->lastReadTime;
}

int MediaTapStream::write(const short *pcmIn, size_t inSamples)
{
    TapState *st = state.get();
    if (!st)
        return -1;
    std::vector<short> ring;  /* the speak ring, made on the first write (outside the lock) */
    {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->speak.buf.empty())
            ring.assign(st->speakCapacity, 0);
    }
    std::lock_guard<std::mutex> lk(st->mu);
    if (st->closed)
        return -1;
    if (!pcmIn || inSamples == 0)
        return 0;
    if (st->speak.buf.empty())
        st->speak.buf.swap(ring);
    long long dropped = st->speak.push(pcmIn, inSamples);
    if (dropped) {
        st->speakDropped += dropped;
        st->speakOverflows++;
    }
    st->speakWritten += (long long)inSamples;
    st->speaking = true;
    st->ending = false;
    return (int)inSamples;
}

void MediaTapStream::endWrite()
{
    if (!state)
        return;
    std::lock_guard<std::mutex> lk(state->mu);
    if (state->speaking)
        state->ending = true;
}

long long MediaTapStream::flushSpeak()
{
    if (!state)
        return 0;
    std::lock_guard<std::mutex> lk(state->mu);
    const long long n = state->speak.fill();
    state->speak.tail = state->speak.head;
    state->speakFlushed += n;
    state->speaking = false;
    state->playing = false;
    state->ending = false;
    return n;
}

long long MediaTapStream::speakBuffered() const
{
    if (!state)
        return 0;
    std::lock_guard<std::mutex> lk(state->mu);
    return state->speak.fill();
}

void MediaTapStream::setHub(const MediaTapHub &hub, int key, unsigned chunkSamples)
{
    TapState *st = state.get();
    if (!st)
        return;
    TapHubState *h = hub.state.get();
    bool wake;
    std::lock_guard<std::mutex> lk(st->mu);
    {
        std::lock_guard<std::mutex> hk(h->mu);
        HubMember &m = h->members[key];
        h->capacity += (long long)st->listen.buf.size() - m.capacity;
        m.state = state;
        m.capacity = (long long)st->listen.buf.size();
        st->hub = hub.state;
        st->hasHub = true;
        st->key = key;
        st->hubChunk = chunkSamples ? chunkSamples : 1;
        st->alignPending = st->hubChunk > 1;
        st->align();
        wake = st->handOver(h);  /* what is buffered already (or the end of a closed stream) */
    }
    /* From now on the ring only stages less than a chunk (plus a frame, plus the alignment
     * skip): a small ring keeps the media clock's writes in its cache. The hub's bound stays
     * what the stream was opened with (m.capacity). */
    const size_t stage = (size_t)(2 * st->hubChunk + st->spf);
    if (st->listen.buf.size() > stage)
        st->listen.resize(stage);
    if (wake)
        h->signal();
}

MediaTapStats MediaTapStream::getStats() const
{
    MediaTapStats s;
    TapState *st = state.get();
    if (!st) {
        s.closed = true;
        return s;
    }
    std::lock_guard<std::mutex> lk(st->mu);
    s.clockRate = st->rate;
    s.listenSamples = st->listen.head;
    s.listenRead = st->listenRead;
    s.listenDropped = st->listenDropped + st->hubDropped.load();
    s.listenOverflows = st->listenOverflows + st->hubOverflows.load();
    s.listenBuffered = st->listen.fill();
    s.speakWritten = st->speakWritten;
    s.speakPlayed = st->speakPlayed;
    s.speakDropped = st->speakDropped;
    s.speakOverflows = st->speakOverflows;
    s.speakFlushed = st->speakFlushed;
    s.speakUnderflows = st->speakUnderflows;
    s.speakSilence = st->speakSilence;
    s.speakBuffered = st->speak.fill();
    s.speakStartedAt = st->speakStartedAt;
    s.closed = st->closed;
    return s;
}

unsigned MediaTapStream::getClockRate() const
{
    return state ? state->rate : 0;
}

bool MediaTapStream::isClosed() const
{
    if (!state)
        return true;
    std::lock_guard<std::mutex> lk(state->mu);
    return state->closed;
}

/* ---- MediaTap: engine thread -------------------------------------------------------- */

/* Mark a stream's state closed and hand its hub the tail and the end (any thread but the
 * media clock's). */
static void closeState(const std::shared_ptr<TapState> &st)
{
    if (!st)
        return;
    std::shared_ptr<TapHubState> hub;
    bool wake = false;
    {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->closed)
            return;
        st->closed = true;
        st->speaking = false;
        if (st->hasHub && (hub = st->hub.lock())) {
            std::lock_guard<std::mutex> hk(hub->mu);
            wake = st->handOver(hub.get());
        }
    }
    st->cv.notify_all();
    if (wake)
        hub->signal();
}

MediaTap::MediaTap()
: pool(NULL), port(NULL), rate(0), spf(0), recPaused(false), pstate(std::make_shared<PortState>())
{
}

MediaTap::~MediaTap()
{
    close();
}

void MediaTap::createPort(unsigned clockRate, unsigned frameMs) PJSUA2_THROW(pj::Error)
{
    if (port != NULL)
        PJSUA2_RAISE_ERROR2(PJ_EEXISTS, "MediaTap::createPort()");
    if (clockRate < 8000 || clockRate > 192000 || frameMs == 0 || frameMs > 200)
        PJSUA2_RAISE_ERROR2(PJ_EINVAL, "MediaTap::createPort()");
    rate = clockRate;
    spf = clockRate * frameMs / 1000;
    pool = pjsua_pool_create("mediatap", 512, 512);
    if (!pool)
        PJSUA2_RAISE_ERROR2(PJ_ENOMEM, "MediaTap::createPort()");
    port = PJ_POOL_ZALLOC_T(pool, pjmedia_port);
    pj_str_t name = pj_str(const_cast<char *>("tap"));
    pjmedia_port_info_init(&port->info, &name, PJMEDIA_SIG_CLASS_APP('C', 'T', 'P'),
                           clockRate, 1, 16, spf);
    port->port_data.pdata = pstate.get();
    port->port_data.ldata = recPaused ? 1 : 0;
    port->put_frame = &tap_put_frame;
    port->get_frame = &tap_get_frame;
    try {
        registerMediaPort2(port, pool);
    } catch (...) {
        pj_pool_release(pool);
        pool = NULL;
        port = NULL;
        throw;
    }
}

void MediaTap::createTap(unsigned clockRate, unsigned frameMs, unsigned bufferMs)
    PJSUA2_THROW(pj::Error)
{
    createPort(clockRate, frameMs);
    openStream(bufferMs);
}

MediaTapStream MediaTap::openStream(unsigned bufferMs) PJSUA2_THROW(pj::Error)
{
    if (port == NULL)
        PJSUA2_RAISE_ERROR2(PJ_EINVALIDOP, "MediaTap::openStream()");
    std::shared_ptr<TapState> st = std::make_shared<TapState>();
    st->rate = rate;
    st->spf = spf;
    size_t cap = (size_t)rate * bufferMs / 1000;
    cap = std::max(cap, (size_t)spf * 2);
    st->listen.buf.assign(cap, 0);
    st->speakCapacity = cap;  /* the speak ring is made by the first write(): most taps only listen */
    std::shared_ptr<TapState> old;
    {
        std::lock_guard<std::mutex> lk(pstate->mu);
        old = pstate->listener;
        pstate->listener = st;
    }
    closeState(old);
    MediaTapStream s;
    s.state = st;
    return s;
}

void MediaTap::closeStream()
{
    std::shared_ptr<TapState> old;
    {
        std::lock_guard<std::mutex> lk(pstate->mu);
        old.swap(pstate->listener);
    }
    closeState(old);
}

MediaTapStream MediaTap::getStream() const PJSUA2_THROW(pj::Error)
{
    MediaTapStream s;
    {
        std::lock_guard<std::mutex> lk(pstate->mu);
        s.state = pstate->listener;
    }
    if (!s.state)
        PJSUA2_RAISE_ERROR2(PJ_EINVALIDOP, "MediaTap::getStream()");
    return s;
}

void MediaTap::startRecording(const string &path) PJSUA2_THROW(pj::Error)
{
    if (port == NULL)
        PJSUA2_RAISE_ERROR2(PJ_EINVALIDOP, "MediaTap::startRecording()");
    {
        std::lock_guard<std::mutex> lk(pstate->mu);
        if (pstate->wav)
            PJSUA2_RAISE_ERROR2(PJ_EEXISTS, "MediaTap::startRecording()");
    }
    pjmedia_port *wav = NULL;
    pj_status_t status = pjmedia_wav_writer_port_create(pool, path.c_str(), rate, 1, spf, 16, 0, 0,
                                                        &wav);
    if (status != PJ_SUCCESS)
        PJSUA2_RAISE_ERROR2(status, "MediaTap::startRecording()");
    std::lock_guard<std::mutex> lk(pstate->mu);
    pstate->wav = wav;
}

void MediaTap::stopRecording()
{
    pjmedia_port *wav = NULL;
    {
        std::lock_guard<std::mutex> lk(pstate->mu);
        std::swap(wav, pstate->wav);
    }
    /* After libDestroy the pool (and the port in it) is gone: nothing left to finish. */
    if (wav && pjsua_get_state() != PJSUA_STATE_NULL)
        pjmedia_port_destroy(wav);  /* flushes and writes the WAV header's sizes */
}

void MediaTap::pauseRecording(bool paused)
{
    std::lock_guard<std::mutex> lk(pstate->mu);
    recPaused = paused;
    if (port != NULL)
        port->port_data.ldata = paused ? 1 : 0;
}

bool MediaTap::isRecordingPaused() const
{
    return recPaused;
}

void MediaTap::close()
{
    if (port != NULL) {
        /* After libDestroy there is no bridge left to leave (and no pool factory). */
        if (pjsua_get_state() != PJSUA_STATE_NULL)
            unregisterMediaPort();  /* synchronous: no put/get_frame after this */
        stopRecording();
        if (pjsua_get_state() != PJSUA_STATE_NULL)
            pj_pool_release(pool);
        pool = NULL;
        port = NULL;
    }
    closeStream();
}

} // namespace callcenter
