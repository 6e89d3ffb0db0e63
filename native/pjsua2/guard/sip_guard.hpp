/*
 * sip_guard.hpp - the callcenter SIP guard: a pjsip module that screens every request no
 * dialog claimed before pjsua sees it.
 *
 * Registered at priority 40: after the user-agent layer (32: requests inside a known dialog
 * are taken there and never reach the guard) and before pjsua's own modules (64: calls,
 * presence, instant messages). What reaches it is a request outside any dialog:
 *
 *   INVITE     passed to pjsua unless: the engine stops (503), every call slot is taken
 *              (503 + Retry-After), the sender already has `perSourceCalls` calls or sends
 *              new calls faster than `perSourceRate` per second (503 + Retry-After; peers
 *              added with addTrusted() are exempt), the Request-URI is not sip:/sips: (416),
 *              or the SDP offer has no audio stream with a port (488). An INVITE without a
 *              body (late offer) passes.
 *   OPTIONS    passed (pjsua answers 200: keep-alives)
 *   ACK CANCEL passed (the transaction layer matches them)
 *   SUBSCRIBE, PUBLISH                     489 Bad Event (no event package is served)
 *   MESSAGE, REGISTER, REFER, NOTIFY, INFO, UPDATE, PRACK    405 + Allow
 *   BYE, or any request with a To tag (its dialog is unknown)  481
 *   anything else                                              501
 *
 * A second module, right after the transaction layer (17), checks the SDP of every message,
 * inside a dialog or not (re-INVITE, UPDATE, the ACK of a late offer, a response): a connection
 * address that is not an IP address (a host name, which pjmedia would resolve on the engine
 * thread, or 128+ characters, which abort it in an assertion) gets 488; an ACK or a response
 * with one is dropped.
 *
 * That module also normalizes the DTMF of an INFO inside a dialog before pjsua's own handler
 * sees it (pjsua parses only application/dtmf-relay, case-sensitively, and sends nothing
 * for application/dtmf, which then gets 500): a digit (0-9 * # A-D, or its RFC 4733 event code
 * 10-15) in either body becomes the canonical "Signal=D\r\nDuration=N" dtmf-relay body, which
 * pjsua answers 200 and reports (Call::onDtmfDigit, method SIP_INFO); a hook flash gets 200
 * and no report; an unusable signal gets 400.
 *
 * Every refusal is a stateless response to the request's own source: the guard never sends a
 * request anywhere. It logs nothing itself (a flood cannot multiply log lines): takeCounts()
 * hands the counts since the last call to the engine, which logs one summary line.
 *
 * Calls are counted per source address (the IP, without port) from the INVITE that passed,
 * until its call ends: a final non-2xx response to that INVITE, callEnded(Call-ID) from the
 * engine, or 64 s without an answer (a request pjsua dropped). Everything runs on the pjsip
 * thread (the engine thread): there are no locks.
 */
#ifndef CALLCENTER_SIP_GUARD_HPP
#define CALLCENTER_SIP_GUARD_HPP

#include <string>

namespace callcenter {

/** Requests screened since the previous SipGuard::takeCounts(). */
struct SipGuardCounts {
    unsigned long long accepted = 0;       /* INVITEs passed to pjsua */
    unsigned long long full = 0;           /* 503: every call slot taken */
    unsigned long long sourceBusy = 0;     /* 503: the sender's concurrent-call cap */
    unsigned long long sourceRate = 0;     /* 503: the sender's new-call rate */
    unsigned long long stopping = 0;       /* 503: the engine is stopping */
    unsigned long long badScheme = 0;      /* 416 */
    unsigned long long badOffer = 0;       /* 488: no audio stream, or an unsafe SDP address */
    unsigned long long badEvent = 0;       /* 489 */
    unsigned long long notAllowed = 0;     /* 405 */
    unsigned long long noDialog = 0;       /* 481 */
    unsigned long long notImplemented = 0; /* 501 */
    std::string lastRefused;               /* "METHOD from IP" of the last refusal */
};

class SipGuard {
public:
    SipGuard();
    ~SipGuard();

    /** Register with pjsua's SIP endpoint (after Endpoint::libInit; one guard at a time). */
    void install();
    /** Unregister (before Endpoint::libDestroy). Idempotent. */
    void uninstall();

    /** maxCalls: call slots in all; perSourceCalls / perSourceRate (new calls per second,
     *  with a burst of perSourceBurst): per sender; retryAfter: seconds, in every 503. */
    void setLimits(unsigned maxCalls, unsigned perSourceCalls, double perSourceRate,
                   double perSourceBurst, unsigned retryAfter);
    /** Exempt a network from the per-source limits: an IPv4 or IPv6 address and a prefix
     *  length (e.g. a trunk, or Kamailio in front). Returns false for an unparsable address. */
    bool addTrusted(const std::string &address, unsigned prefixLen);
    /** While stopping, every new INVITE gets 503. */
    void setStopping(bool stopping);

    /** The call with this SIP Call-ID has ended: its sender's count goes down. Bytes outside
     *  printable ASCII in the Call-ID are written as '?' (voice/core.py does the same). */
    void callEnded(const std::string &sipCallId);
    /** Counts since the previous call, then zero. */
    SipGuardCounts takeCounts();

    struct Impl;
private:
    Impl *impl;
};

}  // namespace callcenter

#endif
