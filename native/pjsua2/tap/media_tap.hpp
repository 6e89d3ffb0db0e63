/*
 * media_tap.hpp - the callcenter project's live-audio tap for pjsua2 (GPL-2.0-or-later).
 *
 * WHAT IT IS
 *   MediaTap is an AudioMedia subclass that registers a pjmedia_port of its own with the
 *   conference bridge (the way AudioMediaPlayer/Recorder do, via registerMediaPort2). The
 *   port has two bounded rings of 16-bit mono PCM at the bridge's clock rate:
 *
 *     listen ring  <- put_frame: what the bridge delivers to the port. Connect a call to the
 *                     tap (call.startTransmit(tap)) and this is what the call SAYS.
 *     speak ring   -> get_frame: what the bridge asks the port for. Connect the tap to a call
 *                     (tap.startTransmit(call)) and this is what the call HEARS.
 *
 *   The application reads and writes PCM in chunks (20-200 ms) through MediaTapStream.
 *
 * THREADING
 *   - MediaTap (create, startTransmit, close, destroy) belongs to the pjsua2 engine thread,
 *     like every other pjsua2 object. Its destructor removes the port from the bridge
 *     (synchronous in pjproject 2.12: once it returns the media clock never calls us again).
 *   - put_frame / get_frame run on the media clock thread. Each takes the ring's own
 *     std::mutex, which every other holder keeps only for a memcpy and a few counters:
 *     nothing holds it while waiting, allocating or calling into Python, so the media clock
 *     never waits on the application. No pjlib call is made on the application's side.
 *   - MediaTapStream is a handle on the rings that is safe on ANY thread, including threads
 *     pjlib does not know, and may outlive the MediaTap (reads then drain what is left and
 *     report the end). Its copies share one state (std::shared_ptr). One reader and one
 *     writer at a time per tap are expected (the read position bookkeeping is per tap).
 *   - The SWIG binding is built with -threads: the GIL is released around the calls that may
 *     block (read() with a timeout, and MediaTap's bridge operations),
 *     so a blocking read on a worker thread does not stall Python. media_tap.i keeps the GIL
 *     for the non-blocking ones (a memcpy under a mutex): no GIL hand-off per call.
 *   - MediaTapHub lets one thread serve many taps. A stream attached to a hub (setHub) hands
 *     each whole chunk over as soon as the bridge completes it, on the media clock thread
 *     (the samples are still in its cache; the frame that completes a chunk goes from the
 *     bridge's buffer to the hub's without passing through the stream's ring): the hub
 *     appends it to one buffer, and readReady()
 *     copies everything pending out in one memcpy, so the reader touches one buffer, not a
 *     ring per tap. Chunks are aligned to the bridge's clock (setHub): all the taps of a hub
 *     with one chunk size are complete on the same tick, once per chunk. The hub follows the
 *     bridge's ticks (the frames' timestamps) and signals its eventfd once per tick, when it
 *     is complete: as many streams handed chunks over as in the last tick that had any, or
 *     else when the next tick begins. So a bridge tick that completes many taps costs the
 *     reader one wake-up and one readReady(), whatever the tick's length. A stream attached
 *     or closed from another thread signals at once. Lock order: the port's mutex (the
 *     media clock holds it through put_frame), the stream's, then the hub's; the reader holds
 *     the hub's only to swap two buffers.
 *
 * OVERFLOW AND UNDERFLOW
 *   - Listen ring full (nobody reads): the oldest samples are dropped to make room for the
 *     new frame; listenDropped counts samples, listenOverflows counts frames that dropped.
 *     Read positions are absolute sample indexes, so a reader sees the gap.
 *   - Speak ring full (a writer ahead of real time): the oldest unplayed samples are dropped;
 *     speakDropped / speakOverflows count them.
 *   - Speak ring short when the bridge asks: the missing samples are played as silence. An
 *     underflow is counted when a stream that was being written runs dry without endWrite():
 *     speakUnderflows counts such gaps, speakSilence the silence samples played in them. An
 *     idle speak ring (never written, or drained after endWrite) gives the bridge no frame
 *     at all (PJMEDIA_FRAME_TYPE_NONE) and counts nothing.
 *
 * TIMESTAMPS
 *   Samples are numbered from 0 in each ring. After a read, lastReadPosition() is the index
 *   of its first sample and lastReadTime() the CLOCK_MONOTONIC time (seconds, the clock of
 *   Python's time.monotonic()) at which the bridge delivered that sample, estimated as
 *   (time of the newest put_frame) - (samples buffered after it) / clockRate. For a stream
 *   on a hub, "the time of a put_frame" is when the bridge's tick reached the hub's first
 *   stream: one clock read per tick for all of them (a tick walks every port in a few ms).
 */
#ifndef CALLCENTER_MEDIA_TAP_HPP
#define CALLCENTER_MEDIA_TAP_HPP

#include <pjsua2.hpp>

#include <memory>
#include <vector>

namespace callcenter
{

struct TapState;
struct TapHubState;
struct PortState;

/** A snapshot of a tap's counters (samples unless the name says otherwise). */
struct MediaTapStats
{
    unsigned clockRate;         /**< samples per second of both rings */
    long long listenSamples;    /**< samples the bridge delivered (what the call said) */
    long long listenRead;       /**< samples the application read */
    long long listenDropped;    /**< samples dropped because the listen ring was full */
    long long listenOverflows;  /**< frames that had to drop older samples */
    long long listenBuffered;   /**< samples waiting to be read */
    long long speakWritten;     /**< samples the application wrote */
    long long speakPlayed;      /**< samples the bridge took (what the call heard) */
    long long speakDropped;     /**< samples dropped because the speak ring was full */
    long long speakOverflows;   /**< writes that had to drop older samples */
    long long speakFlushed;     /**< samples discarded by flushSpeak() */
    long long speakUnderflows;  /**< times a written stream ran dry before endWrite() */
    long long speakSilence;     /**< silence samples played inside those gaps */
    long long speakBuffered;    /**< samples waiting to be played */
    double speakStartedAt;      /**< monotonic time the bridge took the first sample of the
                                     latest written stream (after the ring was idle), or 0 */
    bool closed;                /**< the port is gone from the bridge */

    MediaTapStats();
};

/** Waits for many taps at once: see the header comment. Safe on any thread. */
class MediaTapHub
{
public:
    MediaTapHub();
    ~MediaTapHub();

    /**
     * A file descriptor (Linux eventfd) that becomes readable when the taps of a bridge tick
     * are ready (see the header comment): an event loop can watch it (asyncio's add_reader),
     * drain it (read 8 bytes) and call readReady() at once instead of blocking a thread.
     * Owned by the hub; -1 if it could not be created.
     */
    int fileno() const;

    /**
     * Take every chunk the hub's streams handed over, in one call, without blocking: their
     * samples go into pcmOut one after the other, and a record of READY_FIELDS 64-bit
     * integers per chunk into metaOut:
     *   [key, offset of its samples in pcmOut, samples, position of the first sample in its
     *    stream, the monotonic time the bridge delivered it in ns, 1 if the stream has closed
     *    (samples 0, the last record of that key; the hub then forgets it) else 0].
     * A stream has several records if the reader was late; a closed stream's tail may be
     * shorter than a chunk. Returns the number of records. What does not fit (pcmOut or
     * metaOut full) stays for the next call, and the eventfd is signalled again for it.
     */
    int readReady(short *pcmOut, size_t outSamples, long long *metaOut, size_t metaCount);

    /** 64-bit integers per readReady() record. */
    static const int READY_FIELDS = 6;

private:
    friend class MediaTapStream;
    std::shared_ptr<TapHubState> state;
};

/** The application's handle on a tap's rings. Safe on any thread; may outlive the tap. */
class MediaTapStream
{
public:
    MediaTapStream();
    ~MediaTapStream();

    /**
     * Copy buffered listen samples into pcmOut (16-bit PCM, native byte order), in whole
     * chunks of chunkSamples, as many as it holds (outSamples; chunkSamples 0 or more than
     * outSamples means one chunk of outSamples). Blocks up to timeoutMs (0: no wait,
     * negative: no limit) until at least one chunk is buffered. Returns the number of samples
     * copied: 0 on timeout, -1 once the tap is closed and drained; the last read of a closed
     * tap may return fewer samples than a chunk.
     */
    int read(short *pcmOut, size_t outSamples, unsigned chunkSamples, int timeoutMs);

    /** Index of the first sample of the last read() that copied anything. */
    long long lastReadPosition() const;

    /** Monotonic time (seconds) at which the bridge delivered that sample. */
    double lastReadTime() const;

    /**
     * Queue samples for the call to hear. Never blocks: if the speak ring overflows, the
     * oldest unplayed samples are dropped and counted. Returns the samples queued, or -1 if
     * the tap is closed.
     */
    int write(const short *pcmIn, size_t inSamples);

    /** The written stream is complete: running dry after this is not an underflow. */
    void endWrite();

    /** Discard the samples not yet played (e.g. the caller barged in); returns how many. */
    long long flushSpeak();

    /** Samples waiting in the speak ring (for pacing a writer). */
    long long speakBuffered() const;

    /**
     * Hand every whole chunk of chunkSamples to hub from now on, under key (and, when the tap
     * closes, its short tail and the end): see the header comment. Replaces any earlier hub.
     * read() then only sees what is not yet a whole chunk. The listen ring first drops its
     * oldest samples up to the next multiple of chunkSamples in the bridge's clock (less than
     * a chunk, once): every tap of the hub with that chunk size is then complete on the same
     * bridge tick, so one wake-up serves them all. The hub holds at most as many samples as
     * its streams' listen rings together; beyond that a slow reader loses the oldest chunks
     * (counted in listenDropped / listenOverflows).
     */
    void setHub(const MediaTapHub &hub, int key, unsigned chunkSamples);

    /** Counters and fill levels. */
    MediaTapStats getStats() const;

    /** Samples per second of the rings (0 before the tap is created). */
    unsigned getClockRate() const;

    /** True once the port has left the bridge. */
    bool isClosed() const;

private:
    friend class MediaTap;
    std::shared_ptr<TapState> state;
};

/**
 * The conference-bridge side of a tap: one pjmedia port, the stream it currently feeds (at
 * most one at a time) and, optionally, a WAV recording of what it hears. Engine thread only
 * (see the header comment).
 *
 * A call's recorder can be a MediaTap (createPort + startRecording): a stream opened on it
 * later (openStream) reads the same frames the recording gets, without a second bridge port,
 * whose per-tick mixing costs more than the tap's own ring copy.
 */
class MediaTap : public pj::AudioMedia
{
public:
    MediaTap();
    virtual ~MediaTap();

    /**
     * Create the port and add it to the conference bridge, with no stream and no recording.
     *
     * @param clockRate  the bridge's clock rate (the endpoint's medConfig.clockRate)
     * @param frameMs    samples per frame of the port, in ms (the bridge's ptime, 20)
     */
    void createPort(unsigned clockRate, unsigned frameMs = 20) PJSUA2_THROW(pj::Error);

    /** createPort() then openStream(bufferMs). */
    void createTap(unsigned clockRate, unsigned frameMs = 20, unsigned bufferMs = 2000)
        PJSUA2_THROW(pj::Error);

    /**
     * Start a new stream (fresh rings of bufferMs each, at least 2 frames; positions from 0)
     * and return its handle. A stream already open is closed first (its readers see the end).
     */
    MediaTapStream openStream(unsigned bufferMs = 2000) PJSUA2_THROW(pj::Error);

    /** Close the current stream, if any (the port stays, and so does its recording). */
    void closeStream();

    /** A handle on the current stream (raises if none is open). */
    MediaTapStream getStream() const PJSUA2_THROW(pj::Error);

    /** Record every frame the port hears into a 16-bit mono WAV file (one at a time). */
    void startRecording(const std::string &path) PJSUA2_THROW(pj::Error);

    /** Finish the recording (its header gets the final sizes). Idempotent. */
    void stopRecording();

    /**
     * While paused, the recording gets silence instead of what the port hears, frame for
     * frame (the file keeps real time: the pause is a stretch of zeros); the stream still
     * gets the real audio. Applies to the current and any later recording of this port.
     */
    void pauseRecording(bool paused);

    /** True between pauseRecording(true) and pauseRecording(false). */
    bool isRecordingPaused() const;

    /**
     * Remove the port from the bridge now (the destructor does it otherwise), finish the
     * recording and close the stream; streams keep what is buffered and report the end once
     * it is read. Idempotent.
     */
    void close();

private:
    pj_pool_t *pool;
    pjmedia_port *port;
    unsigned rate;
    unsigned spf;
    bool recPaused;
    std::shared_ptr<PortState> pstate;

    MediaTap(const MediaTap &);
    MediaTap &operator=(const MediaTap &);
};

} // namespace callcenter

#endif
