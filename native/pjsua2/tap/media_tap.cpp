/*
 * media_tap.cpp - the callcenter project's live-audio tap for pjsua2 (GPL-2.0-or-later).
 * Design, threading and counters: see media_tap.hpp.
 */
#include "media_tap.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <sys/eventfd.h>
#include <unistd.h>

#define THIS_FILE "media_tap.cpp"

namespace callcenter
{

using pj::Error;
using std::string;

namespace
{

double monotonicNow()
{
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

/* A bounded ring of samples addressed by absolute sample index (head/tail never wrap). */
struct Ring
{
    std::vector<short> buf;
    long long head = 0;     /* index of the next sample to be written */
    long long tail = 0;     /* index of the oldest sample still buffered */

    long long fill() const { return head - tail; }

    /* Append n samples, dropping the oldest ones if needed; returns how many were dropped. */
    long long push(const short *src, size_t n)
    {
        const long long cap = (long long)buf.size();
        long long dropped = 0;
        if ((long long)n > cap) {
            /* Keep only the newest cap samples of this write. */
            const long long skip = (long long)n - cap;
            dropped = fill() + skip;
            head += skip;
            tail = head;
            src += skip;
            n = (size_t)cap;
        } else {
            const long long over = fill() + (long long)n - cap;
            if (over > 0) {
                tail += over;
                dropped = over;
            }
        }
        size_t at = (size_t)(head % cap);
        size_t first = std::min(n, (size_t)cap - at);
        std::memcpy(&buf[at], src, first * sizeof(short));
        if (n > first)
            std::memcpy(&buf[0], src + first, (n - first) * sizeof(short));
        head += (long long)n;
        return dropped;
    }

    /* Remove n <= fill() samples into dst. */
    void pop(short *dst, size_t n)
    {
        const long long cap = (long long)buf.size();
        size_t at = (size_t)(tail % cap);
        size_t first = std::min(n, (size_t)cap - at);
        std::memcpy(dst, &buf[at], first * sizeof(short));
        if (n > first)
            std::memcpy(dst + first, &buf[0], (n - first) * sizeof(short));
        tail += (long long)n;
    }
};

} // namespace

struct TapHubState
{
    std::mutex mu;
    std::vector<int> ready;
    /* The streams attached with setHub(), for readReady(): the hub owns a reference until a
     * closed stream is drained (streams only hold a weak one back: no cycle). */
    std::unordered_map<int, std::shared_ptr<TapState>> members;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    /* The bridge tick being delivered (media clock thread): see frame(). tick is also read
     * without mu by that same thread, to skip the lock on every frame but a tick's first. */
    std::atomic<unsigned long long> tick{~0ULL};
    size_t tickPosts = 0;       /* keys the bridge posted in this tick */
    size_t expected = 0;        /* ...in the last tick that posted any (0: not known yet) */
    bool unsignalled = false;   /* posted keys the reader has not been woken for */

    ~TapHubState()
    {
        if (efd >= 0)
            ::close(efd);
    }

    void signal()
    {
        if (efd >= 0) {
            eventfd_t one = 1;
            ssize_t r = ::write(efd, &one, sizeof(one));  /* only fails if 2^64 are pending */
            (void)r;
        }
    }

    /* With mu held: a frame of bridge tick ts; true if the reader should be woken now. */
    bool enterTick(unsigned long long ts)
    {
        if (ts == tick.load(std::memory_order_relaxed))
            return false;
        tick.store(ts, std::memory_order_relaxed);
        if (tickPosts)
            expected = tickPosts;
        tickPosts = 0;
        const bool wake = unsignalled;  /* the last tick ended short of what was expected */
        unsignalled = false;
        return wake;
    }

    /* Media clock thread, on every frame a member stream gets (key >= 0: it became ready).
     *
     * One wake-up per tick, once the tick is complete: when as many keys as in the last tick
     * that posted any have been posted, or, if fewer come (a tap left, or a call sent no
     * audio), when the next tick begins. Keys beyond that count (a tap joined) wake the reader
     * on the next tick too. So a pass reads every tap of the tick, and the reader needs no
     * timer of its own to gather them. */
    void frame(unsigned long long ts, int key)
    {
        if (key < 0 && ts == tick.load(std::memory_order_relaxed))
            return;  /* the common case, without the lock: nothing new in this tick */
        bool wake;
        {
            std::lock_guard<std::mutex> lk(mu);
            wake = enterTick(ts);
            if (key >= 0) {
                ready.push_back(key);
                ++tickPosts;
                if (tickPosts == expected || expected == 0)
                    wake = true;
                else
                    unsignalled = true;
                if (wake)
                    unsignalled = false;
            }
        }
        if (wake)
            signal();
    }

    /* Any other thread (a tap attached, closed, or still holding chunks after a read): post
     * key and wake the reader now. */
    void post(int key)
    {
        {
            std::lock_guard<std::mutex> lk(mu);
            ready.push_back(key);
        }
        signal();
    }
};

/* Everything below is guarded by mu, which is only ever held for a memcpy and counters. */
struct TapState
{
    std::mutex mu;
    std::condition_variable cv;     /* blocking read() waits here */
    unsigned rate = 0;
    unsigned spf = 0;               /* samples per frame of the port */
    Ring listen;                    /* put_frame -> application */
    Ring speak;                     /* application -> get_frame */
    double lastPutTime = 0;         /* monotonic time of the newest put_frame */
    unsigned long long tsHead = 0;  /* the bridge's timestamp of the sample after the newest */
    bool tsKnown = false;
    bool alignPending = false;      /* align the listen ring's chunks to the bridge's clock */
    bool closed = false;
    bool speaking = false;          /* a written stream is playing */
    bool ending = false;            /* ...and endWrite() was called */
    bool playing = false;           /* the bridge is taking written samples */
    double speakStartedAt = 0;      /* when it took the first one of this stream */
    int waiters = 0;                /* threads blocked in read() */

    long long listenRead = 0, listenDropped = 0, listenOverflows = 0;
    long long speakWritten = 0, speakPlayed = 0, speakDropped = 0, speakOverflows = 0;
    long long speakFlushed = 0, speakUnderflows = 0, speakSilence = 0;

    std::weak_ptr<TapHubState> hub;
    bool hasHub = false;
    int key = 0;
    long long hubChunk = 1;
    bool posted = false;            /* key is in the hub's ready list and not yet read */

    long long lastReadPos = 0;
    double lastReadTime = 0;

    /* With mu held: drop the oldest samples up to the next multiple of hubChunk in the
     * bridge's clock (< one chunk, once, when a hub attaches). Every tap of a hub with the
     * same chunk size then has a whole chunk on the same bridge tick: one hub pass per chunk
     * period, not one per 20 ms frame. Read positions show the skip. */
    void align()
    {
        if (!alignPending || !tsKnown)
            return;
        const long long fill = listen.fill();
        const long long tail = (long long)(tsHead % (unsigned long long)hubChunk) - fill;
        const long long skip = ((-tail) % hubChunk + hubChunk) % hubChunk;
        if (skip > fill)
            return;     /* not enough buffered yet: try again on the next frame */
        listen.tail += skip;
        alignPending = false;
    }

    /* With mu held: should the hub hear about this stream now? */
    bool shouldPost()
    {
        if (!hasHub || posted || (listen.fill() < hubChunk && !closed))
            return false;
        posted = true;
        return true;
    }
};

/* The port's side: which tap state it currently feeds, and its recording. mu is held by the
 * media clock for a pointer copy and the WAV writer's put_frame (a memcpy, a file write
 * every few frames), and by the engine thread to swap either; never by application threads. */
struct PortState
{
    std::mutex mu;
    std::shared_ptr<TapState> listener;   /* the open stream, or none */
    pjmedia_port *wav = NULL;             /* the recording, or none */
};

/* ---- the pjmedia port: media clock thread ------------------------------------------- */

static pj_status_t tap_put_frame(pjmedia_port *port, pjmedia_frame *frame)
{
    PortState *ps = static_cast<PortState *>(port->port_data.pdata);
    std::shared_ptr<TapState> sp;
    {
        std::lock_guard<std::mutex> lk(ps->mu);
        if (ps->wav)
            pjmedia_port_put_frame(ps->wav, frame);
        if (ps->listener)
            sp = ps->listener;
    }
    TapState *st = sp.get();
    if (!st)
        return PJ_SUCCESS;
    const bool audio = frame->type == PJMEDIA_FRAME_TYPE_AUDIO && frame->buf != NULL && frame->size >= 2;
    std::shared_ptr<TapHubState> hub;
    int key = -1;
    bool wake = false;
    {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->closed)
            return PJ_SUCCESS;
        if (st->hasHub)
            hub = st->hub.lock();
        if (audio) {
            const size_t n = frame->size / sizeof(short);
            long long dropped = st->listen.push(static_cast<const short *>(frame->buf), n);
            if (dropped) {
                st->listenDropped += dropped;
                st->listenOverflows++;
            }
            st->lastPutTime = monotonicNow();
            st->tsHead = frame->timestamp.u64 + n;
            st->tsKnown = true;
            st->align();
            wake = st->waiters > 0;
            if (st->shouldPost())
                key = st->key;
        }
    }
    if (wake)
        st->cv.notify_all();
    if (hub)  /* every frame, audio or not: the hub follows the bridge's ticks */
        hub->frame(frame->timestamp.u64, key);
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

static int readChunks(TapState *st, short *pcmOut, size_t outSamples, long long chunk,
                      int timeoutMs, double *stamp);

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
    std::vector<std::pair<int, std::shared_ptr<TapState>>> todo;
    {
        std::lock_guard<std::mutex> lk(h->mu);
        const size_t take = std::min(maxRecords, h->ready.size());
        todo.reserve(take);
        for (size_t i = 0; i < take; ++i) {
            auto it = h->members.find(h->ready[i]);
            if (it != h->members.end())
                todo.emplace_back(it->first, it->second);
        }
        h->ready.erase(h->ready.begin(), h->ready.begin() + (std::ptrdiff_t)take);
    }
    size_t used = 0;
    int records = 0;
    std::vector<int> leftover;
    for (auto &item : todo) {
        TapState *st = item.second.get();
        const long long chunk = st->hubChunk;
        double stamp[2] = {0, 0};
        const size_t room = outSamples - used;
        if ((long long)room < chunk) {  /* no room for a chunk: the next call takes it */
            leftover.push_back(item.first);
            continue;
        }
        const int n = readChunks(st, pcmOut + used, room, chunk, 0, stamp);
        if (n == 0)
            continue;
        long long *rec = metaOut + (size_t)records * READY_FIELDS;
        rec[0] = item.first;
        rec[1] = (long long)used;
        rec[2] = n > 0 ? n : 0;
        rec[3] = (long long)stamp[0];
        rec[4] = std::llround(stamp[1] * 1e9);
        rec[5] = n < 0 ? 1 : 0;
        ++records;
        if (n > 0) {
            used += (size_t)n;
        } else {
            std::lock_guard<std::mutex> lk(h->mu);
            auto it = h->members.find(item.first);
            if (it != h->members.end() && it->second.get() == st)
                h->members.erase(it);
        }
    }
    if (!leftover.empty()) {  /* still posted: back to the front of the list, and wake */
        {
            std::lock_guard<std::mutex> lk(h->mu);
            h->ready.insert(h->ready.begin(), leftover.begin(), leftover.end());
        }
        h->signal();
    }
    return records;
}

/* ---- MediaTapStream: any thread ----------------------------------------------------- */

MediaTapStream::MediaTapStream()
{
}

MediaTapStream::~MediaTapStream()
{
}

/* Copy whole chunks of buffered listen samples (see MediaTapStream::read); with stamp, also
 * store the first sample's position and delivery time. Any thread. */
static int readChunks(TapState *st, short *pcmOut, size_t outSamples, long long chunk,
                      int timeoutMs, double *stamp)
{
    std::shared_ptr<TapHubState> hub;
    int key = 0;
    int got;
    {
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
        if (n == 0 && st->closed) {
            got = -1;
        } else {
            if (n > 0) {
                /* The frame holding sample k arrived ((head-1-k) / spf) frames before the
                 * newest one, and the bridge delivers one frame every spf / rate seconds. */
                const long long back = (st->listen.head - 1 - st->listen.tail) / st->spf;
                st->lastReadPos = st->listen.tail;
                st->lastReadTime = st->lastPutTime - (double)(back * st->spf) / st->rate;
                st->listen.pop(pcmOut, (size_t)n);
                st->listenRead += n;
                if (stamp) {
                    stamp[0] = (double)st->lastReadPos;
                    stamp[1] = st->lastReadTime;
                }
            }
            got = (int)n;
        }
        st->posted = false;
        if (st->shouldPost()) {
            hub = st->hub.lock();
            key = st->key;
        }
    }
    if (hub)
        hub->post(key);
    return got;
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
    return readChunks(st, pcmOut, outSamples, chunk, timeoutMs, NULL);
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
    std::lock_guard<std::mutex> lk(st->mu);
    if (st->closed)
        return -1;
    if (!pcmIn || inSamples == 0)
        return 0;
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
    {
        std::lock_guard<std::mutex> lk(hub.state->mu);
        hub.state->members[key] = state;
    }
    bool post;
    {
        std::lock_guard<std::mutex> lk(st->mu);
        st->hub = hub.state;
        st->hasHub = true;
        st->key = key;
        st->hubChunk = chunkSamples ? chunkSamples : 1;
        st->alignPending = st->hubChunk > 1;
        st->align();
        st->posted = false;
        post = st->shouldPost();
    }
    if (post)
        hub.state->post(key);
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
    s.listenDropped = st->listenDropped;
    s.listenOverflows = st->listenOverflows;
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

/* Mark a stream's state closed and tell its hub (any thread but the media clock's). */
static void closeState(const std::shared_ptr<TapState> &st)
{
    if (!st)
        return;
    std::shared_ptr<TapHubState> hub;
    int key = 0;
    {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->closed)
            return;
        st->closed = true;
        st->speaking = false;
        st->posted = false;
        if (st->shouldPost()) {
            hub = st->hub.lock();
            key = st->key;
        }
    }
    st->cv.notify_all();
    if (hub)
        hub->post(key);
}

MediaTap::MediaTap() : pool(NULL), port(NULL), rate(0), spf(0), pstate(std::make_shared<PortState>())
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
    st->speak.buf.assign(cap, 0);
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
