/*
 * tap_state.hpp - the shared state behind media_tap.cpp (GPL-2.0-or-later). Private to it:
 * not part of the SWIG interface. What each struct guards, and on which thread: see the
 * comments below and media_tap.hpp.
 *
 *   Ring         a bounded ring of samples addressed by absolute sample index
 *   TapHubState  a hub: the chunks its streams handed over, its eventfd, the bridge's ticks
 *   TapState     a stream: its listen and speak rings, counters, and its hub
 *   PortState    a port: the stream it feeds and its WAV recording
 */
#ifndef CALLCENTER_TAP_STATE_HPP
#define CALLCENTER_TAP_STATE_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <pjmedia.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace callcenter
{

inline double monotonicNow()
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

    /* Reallocate to cap2 samples, keeping the newest ones (at most cap2) at their indexes. */
    void resize(size_t cap2)
    {
        const long long keep = std::min(fill(), (long long)cap2);
        std::vector<short> tmp((size_t)keep);
        const long long from = head - keep;
        tail = from;
        pop(tmp.data(), (size_t)keep);
        buf.assign(cap2, 0);
        head = tail = from;
        push(tmp.data(), (size_t)keep);
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

/* Guarded by mu. Lock order: a port's mu, its stream's, then its hub's (never the other way). */
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
    double tickTime = 0;        /* monotonic time of the tick's first frame: the members' frame time */
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
        tickTime = monotonicNow();  /* one clock read per tick for all the members */
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
            wake = wake || expected == 0 || tickPosts == expected;
            unsignalled = !wake;  /* a wake-up now also covers this stream's records */
        }
        return wake;
    }
};

/* Everything below is guarded by mu, which is only ever held for a memcpy and counters. The
 * fields the media clock touches on every frame come first, in three cache lines (which
 * put_frame prefetches): it runs for hundreds of streams per tick, and each line it misses
 * costs more than its work. */
struct alignas(64) TapState
{
    std::mutex mu;
    Ring listen;                    /* put_frame -> application */
    unsigned long long tsHead = 0;  /* the bridge's timestamp of the sample after the newest */
    double lastPutTime = 0;         /* monotonic time of the newest put_frame */
    long long hubChunk = 1;
    long long listenRead = 0;
    long long lastReadPos = 0;
    double lastReadTime = 0;
    std::weak_ptr<TapHubState> hub;
    int key = 0;
    int waiters = 0;                /* threads blocked in read() */
    unsigned rate = 0;
    unsigned spf = 0;               /* samples per frame of the port */
    bool tsKnown = false;
    bool alignPending = false;      /* align the listen ring's chunks to the bridge's clock */
    bool closed = false;
    bool hasHub = false;
    /* (the hot fields end here, at byte 164) */

    std::condition_variable cv;     /* blocking read() waits here */
    Ring speak;                     /* application -> get_frame (empty until the first write) */
    size_t speakCapacity = 0;
    bool speaking = false;          /* a written stream is playing */
    bool ending = false;            /* ...and endWrite() was called */
    bool playing = false;           /* the bridge is taking written samples */
    double speakStartedAt = 0;      /* when it took the first one of this stream */

    long long listenDropped = 0, listenOverflows = 0;
    long long speakWritten = 0, speakPlayed = 0, speakDropped = 0, speakOverflows = 0;
    long long speakFlushed = 0, speakUnderflows = 0, speakSilence = 0;

    /* What its hub dropped because the reader fell behind (written under the hub's mu). */
    std::atomic<long long> hubDropped{0}, hubOverflows{0};

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

    /* With mu held: the oldest buffered listen sample is about to be read. Note its position
     * and the monotonic time the bridge delivered it (lastReadPos / lastReadTime), and return
     * that time: the frame holding sample k arrived ((head-1-k) / spf) frames before the
     * newest one, and the bridge delivers one frame every spf / rate seconds. incoming: the
     * newest frame's samples when they are handed on without entering the ring. */
    double markRead(long long incoming = 0)
    {
        const long long back = (listen.head + incoming - 1 - listen.tail) / spf;
        lastReadPos = listen.tail;
        lastReadTime = lastPutTime - (double)(back * spf) / rate;
        return lastReadTime;
    }

    /* With mu held, the stream attached to a hub whose mu is held too: one record of the n
     * oldest buffered samples (the ring may wrap inside them), followed by the `incoming`
     * samples of src, which never enter the ring. */
    void handRecord(TapHubState *h, long long n, const short *src = NULL, long long incoming = 0)
    {
        const long long timeNs = std::llround(markRead(incoming) * 1e9);
        if (n == 0) {
            h->append(key, src, incoming, listen.tail, timeNs, false);
        } else {
            const size_t cap = listen.buf.size();
            const size_t at = (size_t)(listen.tail % (long long)cap);
            const size_t first = std::min((size_t)n, cap - at);
            h->append(key, &listen.buf[at], (long long)first, listen.tail, timeNs, false);
            if ((size_t)n > first)
                h->extend(&listen.buf[0], n - (long long)first);
            if (incoming)
                h->extend(src, incoming);
        }
        listen.tail += n;
        listenRead += n + incoming;
    }

    /* With mu held, the stream attached to a hub whose mu is held too: hand it every whole
     * chunk buffered, one record each (and, once closed, the short tail and the end).
     * Returns whether anything was handed over. */
    bool handOver(TapHubState *h)
    {
        bool any = false;
        while (listen.fill() >= hubChunk || (closed && listen.fill() > 0)) {
            handRecord(h, std::min(listen.fill(), hubChunk));
            any = true;
        }
        if (closed) {
            h->append(key, NULL, 0, listen.tail, 0, true);
            hasHub = false;  /* the end is queued: nothing more for the hub */
            any = true;
        }
        return any;
    }

    /* With mu held, the stream attached to a hub whose mu is held too, its chunks aligned: the
     * bridge's frame src of n samples completes the staged chunk (listen.fill() + n ==
     * hubChunk). The staged part and the frame go to the hub as one record, the frame straight
     * from the bridge's buffer: it never passes through the ring. */
    void handOverWith(TapHubState *h, const short *src, long long n)
    {
        handRecord(h, listen.fill(), src, n);
        listen.head += n;
        listen.tail = listen.head;
    }
};

inline void TapHubState::countDrop(int key, long long samples)
{
    auto it = members.find(key);
    if (it != members.end()) {
        it->second.state->hubDropped += samples;
        it->second.state->hubOverflows++;
    }
}

/* The port's side: which tap state it currently feeds, and its recording. mu is held by the
 * media clock through put_frame (the WAV writer's memcpy and a file write every few frames,
 * then the stream's and the hub's, which it locks inside: lock order port, stream, hub) and
 * for a pointer copy in get_frame, and by the engine thread to swap either; never by
 * application threads. */
struct alignas(64) PortState  /* one cache line: mu, listener and wav */
{
    std::mutex mu;
    std::shared_ptr<TapState> listener;   /* the open stream, or none */
    pjmedia_port *wav = NULL;             /* the recording, or none */
};
static_assert(sizeof(PortState) == 64, "PortState is one cache line");

} // namespace callcenter

#endif
