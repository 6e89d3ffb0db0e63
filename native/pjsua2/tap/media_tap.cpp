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
#include <deque>
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

/* A run of samples a stream handed to its hub: one chunk, a closed stream's short tail, or
 * (samples 0, ended) the end of a closed stream. */
struct HubRecord
{
    int key;
    long long samples;
    long long position;     /* index of the first sample in its stream */
    long long timeNs;       /* monotonic time the bridge delivered it, in ns */
    bool ended;
};

/* A stream attached to a hub. */
struct HubMember
{
    std::shared_ptr<TapState> state;
    long long capacity = 0;     /* its listen ring's size: what it adds to the hub's bound */
};

/* Guarded by mu. Lock order: a stream's mu, then its hub's mu (never the other way). */
struct TapHubState
{
    std::mutex mu;
    /* Every whole chunk the member streams hold, in the order they got them: the media clock
     * thread appends each one as it completes (the samples are still in its cache), and
     * readReady() copies them out in one memcpy. pcm[pcmHead:] are the records' samples. */
    std::vector<short> pcm;
    std::vector<short> spare;   /* the other buffer: readReady() swaps them */
    size_t pcmHead = 0;
    std::deque<HubRecord> records;
    long long pending = 0;      /* samples in records */
    long long capacity = 0;     /* bound on pending: the members' ring sizes together */
    std::unordered_map<int, HubMember> members;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    /* The bridge tick being delivered (media clock thread): see frame(). tick is also read
     * without mu by that same thread, to skip the lock on every frame but a tick's first. */
    std::atomic<unsigned long long> tick{~0ULL};
    size_t tickPosts = 0;       /* streams that handed chunks over in this tick */
    size_t expected = 0;        /* ...in the last tick that had any (0: not known yet) */
    bool unsignalled = false;   /* records the reader has not been woken for */

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

    /* With mu held: queue a record and its samples; beyond capacity, the oldest samples go
     * (the reader fell behind), counted against their streams. */
    void append(int key, const short *src, long long n, long long position, long long timeNs,
                bool ended)
    {
        if (records.empty()) {
            pcm.clear();
            pcmHead = 0;
        } else if (pcmHead > pcm.size() / 2) {  /* only after drops: keep the buffer bounded */
            pcm.erase(pcm.begin(), pcm.begin() + (std::ptrdiff_t)pcmHead);
            pcmHead = 0;
        }
        pcm.insert(pcm.end(), src, src + n);
        records.push_back(HubRecord{key, n, position, timeNs, ended});
        pending += n;
        while (pending > capacity && records.size() > 1 && !records.front().ended) {
            const HubRecord &old = records.front();
            countDrop(old.key, old.samples);
            pcmHead += (size_t)old.samples;
            pending -= old.samples;
            records.pop_front();
        }
    }

    /* With mu held: n more samples for the record just appended. */
    void extend(const short *src, long long n)
    {
        pcm.insert(pcm.end(), src, src + n);
        records.back().samples += n;
        pending += n;
    }

    void countDrop(int key, long long samples);  /* with mu held: see TapState */

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

    /* With mu held, on the media clock thread, for every frame a member stream gets (posted:
     * it handed chunks over). Returns whether to wake the reader.
     *
     * One wake-up per tick, once the tick is complete: when as many streams as in the last
     * tick that had any have handed their chunks over, or, if fewer do (a tap left, or a call
     * sent no audio), when the next tick begins. Streams beyond that count (a tap joined)
     * wake the reader on the next tick too. So a pass reads every tap of the tick, and the
     * reader needs no timer of its own to gather them. */
    bool frame(unsigned long long ts, bool posted)
    {
        bool wake = enterTick(ts);
        if (posted) {
            ++tickPosts;
            if (tickPosts == expected || expected == 0)
                wake = true;
            else
                unsignalled = true;
            if (wake)
                unsignalled = false;
        }
        return wake;
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

    /* What its hub dropped because the reader fell behind (written under the hub's mu). */
    std::atomic<long long> hubDropped{0}, hubOverflows{0};

    std::weak_ptr<TapHubState> hub;
    bool hasHub = false;
    int key = 0;
    long long hubChunk = 1;

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

    /* With mu held, the stream attached to a hub whose mu is held too: hand it every whole
     * chunk buffered, one record each (and, once closed, the short tail and the end).
     * Returns whether anything was handed over. */
    bool handOver(TapHubState *h)
    {
        bool any = false;
        while (listen.fill() >= hubChunk || (closed && listen.fill() > 0)) {
            const long long n = std::min(listen.fill(), hubChunk);
            /* The frame holding sample k arrived ((head-1-k) / spf) frames before the newest
             * one, and the bridge delivers one frame every spf / rate seconds. */
            const long long back = (listen.head - 1 - listen.tail) / spf;
            const double t = lastPutTime - (double)(back * spf) / rate;
            lastReadPos = listen.tail;
            lastReadTime = t;
            const long long pos = listen.tail;
            const size_t cap = listen.buf.size();
            const size_t at = (size_t)(listen.tail % (long long)cap);
            const size_t first = std::min((size_t)n, cap - at);  /* the ring may wrap inside */
            h->append(key, &listen.buf[at], (long long)first, pos, std::llround(t * 1e9), false);
            if ((size_t)n > first)
                h->extend(&listen.buf[0], n - (long long)first);
            listen.tail += n;
            listenRead += n;
            any = true;
        }
        if (closed) {
            h->append(key, NULL, 0, listen.tail, 0, true);
            hasHub = false;  /* the end is queued: nothing more for the hub */
            any = true;
        }
        return any;
    }
};

void TapHubState::countDrop(int key, long long samples)
{
    auto it = members.find(key);
    if (it != members.end()) {
        it->second.state->hubDropped += samples;
        it->second.state->hubOverflows++;
    }
}

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
    bool wake = false, signal = false;
    {
        std::lock_guard<std::mutex> lk(st->mu);
        if (st->closed)
            return PJ_SUCCESS;
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
        }
        /* Every frame, audio or not: the hub follows the bridge's ticks. */
        if (st->hasHub && (hub = st->hub.lock())) {
            const unsigned long long ts = frame->timestamp.u64;
            if (st->listen.fill() >= st->hubChunk || ts != hub->tick.load(std::memory_order_relaxed)) {
                std::lock_guard<std::mutex> hk(hub->mu);
                signal = hub->frame(ts, st->handOver(hub.get()));
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
    /* The frame holding sample k arrived ((head-1-k) / spf) frames before the newest one,
     * and the bridge delivers one frame every spf / rate seconds. */
    const long long back = (st->listen.head - 1 - st->listen.tail) / st->spf;
    st->lastReadPos = st->listen.tail;
    st->lastReadTime = st->lastPutTime - (double)(back * st->spf) / st->rate;
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
