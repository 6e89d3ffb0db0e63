/*
 * sip_guard.cpp - see sip_guard.hpp.
 */
#include "sip_guard.hpp"

#include <pjsip.h>
#include <pjmedia.h>
#include <pjsua-lib/pjsua.h>

#include <chrono>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace callcenter {

namespace {

using Clock = std::chrono::steady_clock;

constexpr double UNANSWERED_TTL_S = 64.0;  /* 64 * T1: an INVITE transaction is over by then */
constexpr size_t PRUNE_ABOVE = 4096;       /* idle per-source entries are pruned past this */

struct Source {
    unsigned calls = 0;
    double tokens = 0;
    Clock::time_point refilled;
};

struct Live {
    std::string source;
    pj_int32_t cseq = 0;
    bool answered = false;
    Clock::time_point since;
};

struct Net {
    int family;
    unsigned char addr[16];
    unsigned prefix;
};

pj_str_t cstr(const char *s) { return pj_str(const_cast<char *>(s)); }

std::string toString(const pj_str_t &s) { return std::string(s.ptr ? s.ptr : "", s.ptr ? (size_t)s.slen : 0); }

/* A Call-ID as a map key: every byte outside printable ASCII becomes '?', so that the engine,
 * which sees the header through Python (undecodable bytes as surrogates), names it the same. */
std::string callIdKey(const pj_str_t &s) {
    std::string key = toString(s);
    for (char &c : key)
        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
            c = '?';
    return key;
}

bool parseAddress(const std::string &text, int *family, unsigned char out[16]) {
    std::string host = text;
    if (!host.empty() && host[0] == '[') {  /* [v6]:port */
        size_t end = host.find(']');
        if (end == std::string::npos)
            return false;
        host = host.substr(1, end - 1);
    } else if (std::count(host.begin(), host.end(), ':') == 1) {  /* v4:port */
        host = host.substr(0, host.find(':'));
    }
    pj_str_t s = cstr(host.c_str());
    std::memset(out, 0, 16);
    if (pj_inet_pton(pj_AF_INET(), &s, out) == PJ_SUCCESS) {
        *family = 4;
        return true;
    }
    if (pj_inet_pton(pj_AF_INET6(), &s, out) == PJ_SUCCESS) {
        *family = 6;
        return true;
    }
    return false;
}

bool inNet(const Net &net, int family, const unsigned char *addr) {
    if (family != net.family)
        return false;
    unsigned bits = net.prefix;
    for (unsigned i = 0; i < 16 && bits > 0; ++i, bits = bits >= 8 ? bits - 8 : 0) {
        unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if ((addr[i] & mask) != (net.addr[i] & mask))
            return false;
    }
    return true;
}

}  // namespace

struct SipGuard::Impl {
    pjsip_module mod;      /* requests outside a dialog, after the dialog layer */
    pjsip_module sdpMod;   /* every message with SDP, before the dialog layer */
    bool installed = false;
    bool stopping = false;
    unsigned maxCalls = 512;
    unsigned perSourceCalls = 64;
    double perSourceRate = 20;
    double perSourceBurst = 40;
    unsigned retryAfter = 5;
    std::vector<Net> trusted;
    std::unordered_map<std::string, Source> sources;
    std::unordered_map<std::string, Live> live;
    SipGuardCounts counts;
    unsigned long long seen = 0;

    bool trustedAddr(const std::string &text) const {
        int family;
        unsigned char addr[16];
        if (trusted.empty() || !parseAddress(text, &family, addr))
            return false;
        for (const Net &n : trusted)
            if (inNet(n, family, addr))
                return true;
        return false;
    }

    void release(std::unordered_map<std::string, Live>::iterator it) {
        auto src = sources.find(it->second.source);
        if (src != sources.end() && src->second.calls > 0)
            src->second.calls--;
        live.erase(it);
    }

    void housekeeping(Clock::time_point now) {
        if ((++seen & 255) != 0)
            return;
        for (auto it = live.begin(); it != live.end();) {
            auto next = std::next(it);
            if (!it->second.answered &&
                std::chrono::duration<double>(now - it->second.since).count() > UNANSWERED_TTL_S)
                release(it);
            it = next;
        }
        if (sources.size() > PRUNE_ABOVE) {
            for (auto it = sources.begin(); it != sources.end();) {
                refill(it->second, now);
                if (it->second.calls == 0 && it->second.tokens >= perSourceBurst)
                    it = sources.erase(it);
                else
                    ++it;
            }
        }
    }

    void refill(Source &s, Clock::time_point now) const {
        double dt = std::chrono::duration<double>(now - s.refilled).count();
        s.tokens = std::min(perSourceBurst, s.tokens + dt * perSourceRate);
        s.refilled = now;
    }

    pj_bool_t refuse(pjsip_rx_data *rdata, int code, const char *reason, unsigned long long *counter,
                     bool retry = false, bool allow = false, const char *warning = NULL) {
        (*counter)++;
        const pjsip_method &m = rdata->msg_info.msg->line.req.method;
        counts.lastRefused = toString(m.name) + " from " + rdata->pkt_info.src_name;
        if (m.id == PJSIP_ACK_METHOD)
            return PJ_TRUE;  /* never answer an ACK */
        pjsip_hdr hdrs;
        pj_list_init(&hdrs);
        pj_pool_t *pool = rdata->tp_info.pool;
        if (retry)
            pj_list_push_back(&hdrs, pjsip_retry_after_hdr_create(pool, (int)retryAfter));
        if (allow) {
            pj_str_t name = cstr("Allow"), value = cstr("INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO");
            pj_list_push_back(&hdrs, pjsip_generic_string_hdr_create(pool, &name, &value));
        }
        if (warning) {
            pj_str_t host = cstr("callcenter"), text = cstr(warning);
            pj_list_push_back(&hdrs, pjsip_warning_hdr_create(pool, 304, &host, &text));
        }
        pj_str_t why = cstr(reason);
        pjsip_endpt_respond_stateless(pjsua_get_pjsip_endpt(), rdata, code, &why, &hdrs, NULL);
        return PJ_TRUE;
    }

    /* The message's SDP, parsed in its own pool; NULL without one (or when it does not parse:
     * pjsua answers a broken offer itself, 400 or 488). */
    static pjmedia_sdp_session *parseSdp(pjsip_rx_data *rdata) {
        pjsip_msg_body *body = rdata->msg_info.msg->body;
        if (!body || body->len == 0 || pj_stricmp2(&body->content_type.type, "application") != 0 ||
            pj_stricmp2(&body->content_type.subtype, "sdp") != 0)
            return NULL;  /* none, or multipart and the like: pjsua decides */
        pj_pool_t *pool = rdata->tp_info.pool;
        char *copy = (char *)pj_pool_alloc(pool, body->len + 1);
        std::memcpy(copy, body->data, body->len);
        copy[body->len] = '\0';
        pjmedia_sdp_session *sdp = NULL;
        if (pjmedia_sdp_parse(pool, copy, body->len, &sdp) != PJ_SUCCESS)
            return NULL;
        return sdp;
    }

    static bool ipLiteral(const pj_str_t &addr) {
        if (addr.slen <= 0 || addr.slen >= 64)
            return false;
        char text[64];
        std::memcpy(text, addr.ptr, (size_t)addr.slen);
        text[addr.slen] = '\0';
        unsigned char out[16];
        pj_str_t s = pj_str(text);
        return pj_inet_pton(pj_AF_INET(), &s, out) == PJ_SUCCESS || pj_inet_pton(pj_AF_INET6(), &s, out) == PJ_SUCCESS;
    }

    /* Why pjmedia must not see this SDP, or NULL. Connection addresses are used as socket
     * addresses: one of 128 characters or more aborts the process (an assertion in
     * pj_sockaddr_in_set_str_addr), and a host name is resolved on the engine thread, which
     * then stops for as long as DNS takes. Only IP addresses are accepted. */
    static const char *unsafeSdp(const pjmedia_sdp_session *sdp) {
        if (sdp->origin.addr.slen >= 128)
            return "origin address too long";
        if (sdp->conn && !ipLiteral(sdp->conn->addr))
            return "connection address must be an IP address";
        for (unsigned i = 0; i < sdp->media_count; ++i) {
            const pjmedia_sdp_media *m = sdp->media[i];
            if (m->conn && !ipLiteral(m->conn->addr))
                return "connection address must be an IP address";
            for (unsigned a = 0; a < m->attr_count; ++a) {
                const pjmedia_sdp_attr *attr = m->attr[a];
                if (pj_stricmp2(&attr->name, "rtcp") != 0)
                    continue;
                pjmedia_sdp_rtcp_attr rtcp;
                if (pjmedia_sdp_attr_get_rtcp(attr, &rtcp) == PJ_SUCCESS && rtcp.addr.slen > 0 &&
                    !ipLiteral(rtcp.addr))
                    return "rtcp address must be an IP address";
            }
        }
        return NULL;
    }

    static bool hasUsableAudio(const pjmedia_sdp_session *sdp) {
        for (unsigned i = 0; i < sdp->media_count; ++i) {
            const pjmedia_sdp_media *m = sdp->media[i];
            if (pj_stricmp2(&m->desc.media, "audio") == 0 && m->desc.port != 0)
                return true;
        }
        return false;
    }

    /* The digit of an INFO's DTMF body, in dtmfDigit's terms: 'D' (0-9 * # A-D) with
     * *duration in ms (-1: none given), 'F' for a hook flash, 0 when unusable. Bodies:
     * application/dtmf-relay ("Signal=5\r\nDuration=160", keys in any case, spaces around
     * '=') and application/dtmf (just the signal). A signal may be an RFC 4733 event code:
     * 10 '*', 11 '#', 12-15 A-D, 16 flash. */
    static char dtmfDigit(const char *data, size_t len, bool relay, long *duration) {
        std::string text(data, std::min<size_t>(len, 512));
        std::string signal;
        *duration = -1;
        auto trim = [](std::string v) {
            size_t a = v.find_first_not_of(" \t\r\n"), b = v.find_last_not_of(" \t\r\n");
            return a == std::string::npos ? std::string() : v.substr(a, b - a + 1);
        };
        if (!relay) {
            signal = trim(text);
        } else {
            size_t at = 0;
            while (at <= text.size()) {
                size_t end = text.find('\n', at);
                std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
                at = end == std::string::npos ? text.size() + 1 : end + 1;
                size_t eq = line.find('=');
                if (eq == std::string::npos)
                    continue;
                std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
                for (char &c : key)
                    c = (char)std::tolower((unsigned char)c);
                if (key == "signal")
                    signal = value;
                else if (key == "duration" && !value.empty() && value.size() <= 6 &&
                         value.find_first_not_of("0123456789") == std::string::npos)
                    *duration = std::atol(value.c_str());
            }
        }
        if (signal.size() == 1) {
            char c = (char)std::toupper((unsigned char)signal[0]);
            if ((c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D'))
                return c;
            return signal[0] == '!' ? 'F' : 0;
        }
        if (signal.size() == 2 && signal[0] == '1' && signal[1] >= '0' && signal[1] <= '6')
            return "*#ABCDF"[signal[1] - '0'];
        return 0;
    }

    /* An INFO with a DTMF body, before the dialog layer hands it to pjsua, which handles
     * application/dtmf-relay only (case-sensitively, taking the first character of the signal:
     * "10" became '1'); any other INFO body gets 500 from the dialog layer. A digit is rewritten
     * into the dtmf-relay body pjsua parses (it answers 200 and reports the digit with method
     * SIP INFO); a hook flash gets 200 and is not reported; an unusable body gets 400. */
    pj_bool_t onInfo(pjsip_rx_data *rdata) {
        pjsip_msg_body *body = rdata->msg_info.msg->body;
        if (!rdata->msg_info.to || rdata->msg_info.to->tag.slen == 0)
            return PJ_FALSE;  /* outside a dialog: the guard's other module answers 405 */
        if (!body || !body->data || pj_stricmp2(&body->content_type.type, "application") != 0)
            return PJ_FALSE;
        const bool relay = pj_stricmp2(&body->content_type.subtype, "dtmf-relay") == 0;
        if (!relay && pj_stricmp2(&body->content_type.subtype, "dtmf") != 0)
            return PJ_FALSE;
        long duration = -1;
        const char digit = dtmfDigit((const char *)body->data, body->len, relay, &duration);
        if (digit == 0 || digit == 'F') {
            pj_str_t why = cstr(digit ? "OK" : "Bad Request (DTMF signal)");
            pjsip_endpt_respond_stateless(pjsua_get_pjsip_endpt(), rdata, digit ? 200 : 400, &why, NULL, NULL);
            return PJ_TRUE;
        }
        pj_pool_t *pool = rdata->tp_info.pool;
        char *text = (char *)pj_pool_alloc(pool, 48);
        int n = duration >= 0 ? pj_ansi_snprintf(text, 48, "Signal=%c\r\nDuration=%ld\r\n", digit, duration)
                              : pj_ansi_snprintf(text, 48, "Signal=%c\r\n", digit);
        pj_str_t type = cstr("application"), subtype = cstr("dtmf-relay"), content = {text, n};
        pjsip_msg_body *canonical = pjsip_msg_body_create(pool, &type, &subtype, &content);
        if (!canonical)
            return PJ_FALSE;
        /* pjsua reads the body as a NUL-terminated string (pj_str(body->data)), and the copy
         * pjsip_msg_body_create made is not one: point it at text, which is. */
        canonical->data = text;
        canonical->len = (unsigned)n;
        rdata->msg_info.msg->body = canonical;
        return PJ_FALSE;
    }

    /* Every request with SDP, inside a dialog or not (a re-INVITE, an UPDATE, the ACK of a late
     * offer), before the dialog layer hands it to pjsua: see unsafeSdp(). INFO: see onInfo(). */
    pj_bool_t onAnyRequest(pjsip_rx_data *rdata) {
        const pjsip_method &m = rdata->msg_info.msg->line.req.method;
        if (m.id == PJSIP_OTHER_METHOD && pj_stricmp2(&m.name, "INFO") == 0)
            return onInfo(rdata);
        pjmedia_sdp_session *sdp = parseSdp(rdata);
        rdata->endpt_info.mod_data[sdpMod.id] = sdp;  /* for onInvite: one parse per request */
        const char *why = sdp ? unsafeSdp(sdp) : NULL;
        if (!why)
            return PJ_FALSE;
        return refuse(rdata, 488, "Not Acceptable Here", &counts.badOffer, false, false, why);
    }

    pj_bool_t onInvite(pjsip_rx_data *rdata) {
        Clock::time_point now = Clock::now();
        housekeeping(now);
        pjsip_msg *msg = rdata->msg_info.msg;
        if (stopping)
            return refuse(rdata, 503, "Service Unavailable (shutting down)", &counts.stopping, true);
        if (!PJSIP_URI_SCHEME_IS_SIP(msg->line.req.uri) && !PJSIP_URI_SCHEME_IS_SIPS(msg->line.req.uri))
            return refuse(rdata, 416, "Unsupported URI Scheme", &counts.badScheme);
        if (!rdata->msg_info.cid || !rdata->msg_info.cseq)
            return PJ_FALSE;  /* pjsip rejects it */
        std::string callId = callIdKey(rdata->msg_info.cid->id);
        if (live.count(callId))  /* a second INVITE of a live Call-ID, not a retransmission */
            return refuse(rdata, 482, "Loop Detected", &counts.noDialog);
        if (pjsua_call_get_count() >= maxCalls)
            return refuse(rdata, 503, "Service Unavailable (all lines busy)", &counts.full, true);
        std::string source = rdata->pkt_info.src_name;
        Source &src = sources[source];
        if (src.refilled == Clock::time_point()) {
            src.tokens = perSourceBurst;
            src.refilled = now;
        }
        if (!trustedAddr(source)) {
            if (src.calls >= perSourceCalls)
                return refuse(rdata, 503, "Service Unavailable (too many calls from this address)",
                              &counts.sourceBusy, true);
            refill(src, now);
            if (src.tokens < 1.0)
                return refuse(rdata, 503, "Service Unavailable (calls too fast from this address)",
                              &counts.sourceRate, true);
            src.tokens -= 1.0;
        }
        /* Parsed, and its addresses checked, by onAnyRequest (the module before this one). */
        pjmedia_sdp_session *sdp = (pjmedia_sdp_session *)rdata->endpt_info.mod_data[sdpMod.id];
        if (sdp && !hasUsableAudio(sdp))
            return refuse(rdata, 488, "Not Acceptable Here", &counts.badOffer, false, false,
                          "no audio stream in the offer");
        Live &l = live[callId];
        l.source = source;
        l.cseq = rdata->msg_info.cseq->cseq;
        l.since = now;
        src.calls++;
        counts.accepted++;
        return PJ_FALSE;  /* pjsua takes it from here */
    }

    pj_bool_t onRequest(pjsip_rx_data *rdata) {
        const pjsip_method &m = rdata->msg_info.msg->line.req.method;
        if (m.id == PJSIP_ACK_METHOD || m.id == PJSIP_CANCEL_METHOD)
            return PJ_FALSE;
        if (rdata->msg_info.to && rdata->msg_info.to->tag.slen > 0)
            return refuse(rdata, 481, "Call/Transaction Does Not Exist", &counts.noDialog);
        switch (m.id) {
        case PJSIP_INVITE_METHOD:
            return onInvite(rdata);
        case PJSIP_OPTIONS_METHOD:
            return PJ_FALSE;
        case PJSIP_BYE_METHOD:
            return refuse(rdata, 481, "Call/Transaction Does Not Exist", &counts.noDialog);
        default:
            break;
        }
        static const char *const badEvent[] = {"SUBSCRIBE", "PUBLISH"};
        static const char *const notAllowed[] = {"MESSAGE", "REGISTER", "REFER", "NOTIFY", "INFO", "UPDATE",
                                                 "PRACK"};
        for (const char *name : badEvent)
            if (pj_strcmp2(&m.name, name) == 0)
                return refuse(rdata, 489, "Bad Event", &counts.badEvent);
        for (const char *name : notAllowed)
            if (pj_strcmp2(&m.name, name) == 0)
                return refuse(rdata, 405, "Method Not Allowed", &counts.notAllowed, false, true);
        return refuse(rdata, 501, "Not Implemented", &counts.notImplemented, false, true);
    }

    void onResponse(pjsip_tx_data *tdata) {
        pjsip_msg *msg = tdata->msg;
        if (msg->type != PJSIP_RESPONSE_MSG || msg->line.status.code < 200 || live.empty())
            return;
        const pjsip_cseq_hdr *cseq = (const pjsip_cseq_hdr *)pjsip_msg_find_hdr(msg, PJSIP_H_CSEQ, NULL);
        const pjsip_cid_hdr *cid = (const pjsip_cid_hdr *)pjsip_msg_find_hdr(msg, PJSIP_H_CALL_ID, NULL);
        if (!cseq || !cid || cseq->method.id != PJSIP_INVITE_METHOD)
            return;
        auto it = live.find(callIdKey(cid->id));
        if (it == live.end() || it->second.cseq != cseq->cseq)
            return;  /* not the INVITE that created the call (a re-INVITE's answer) */
        if (msg->line.status.code >= 300)
            release(it);
        else
            it->second.answered = true;
    }
};

namespace {

SipGuard::Impl *g_impl = NULL;  /* the installed guard: pjsip callbacks carry no user data */

pj_bool_t onRxRequest(pjsip_rx_data *rdata) {
    return g_impl ? g_impl->onRequest(rdata) : PJ_FALSE;
}

pj_bool_t onRxAnyRequest(pjsip_rx_data *rdata) {
    return g_impl ? g_impl->onAnyRequest(rdata) : PJ_FALSE;
}

pj_bool_t onRxAnyResponse(pjsip_rx_data *rdata) {
    /* A response's SDP (to a call we place) is checked the same way; an unsafe one is dropped
     * (the transaction then times out). */
    if (!g_impl)
        return PJ_FALSE;
    pjmedia_sdp_session *sdp = SipGuard::Impl::parseSdp(rdata);
    if (sdp && SipGuard::Impl::unsafeSdp(sdp)) {
        g_impl->counts.badOffer++;
        return PJ_TRUE;
    }
    return PJ_FALSE;
}

pj_status_t onTxResponse(pjsip_tx_data *tdata) {
    if (g_impl)
        g_impl->onResponse(tdata);
    return PJ_SUCCESS;
}

}  // namespace

SipGuard::SipGuard() : impl(new Impl) {
    std::memset(&impl->mod, 0, sizeof(impl->mod));
    impl->mod.name = cstr("mod-callcenter-guard");
    impl->mod.id = -1;
    impl->mod.priority = PJSIP_MOD_PRIORITY_UA_PROXY_LAYER + 8;
    impl->mod.on_rx_request = &onRxRequest;
    impl->mod.on_tx_response = &onTxResponse;
    std::memset(&impl->sdpMod, 0, sizeof(impl->sdpMod));
    impl->sdpMod.name = cstr("mod-callcenter-sdp-guard");
    impl->sdpMod.id = -1;
    impl->sdpMod.priority = PJSIP_MOD_PRIORITY_TSX_LAYER + 1;  /* after retransmissions are absorbed */
    impl->sdpMod.on_rx_request = &onRxAnyRequest;
    impl->sdpMod.on_rx_response = &onRxAnyResponse;
}

SipGuard::~SipGuard() {
    uninstall();
    delete impl;
}

void SipGuard::install() {
    if (impl->installed)
        return;
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();
    if (!endpt || g_impl)
        throw std::runtime_error("SipGuard.install: no pjsip endpoint, or a guard is installed already");
    if (pjsip_endpt_register_module(endpt, &impl->mod) != PJ_SUCCESS)
        throw std::runtime_error("SipGuard.install: pjsip_endpt_register_module failed");
    if (pjsip_endpt_register_module(endpt, &impl->sdpMod) != PJ_SUCCESS) {
        pjsip_endpt_unregister_module(endpt, &impl->mod);
        throw std::runtime_error("SipGuard.install: pjsip_endpt_register_module failed");
    }
    impl->installed = true;
    g_impl = impl;
}

void SipGuard::uninstall() {
    if (!impl->installed)
        return;
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();
    if (endpt) {
        pjsip_endpt_unregister_module(endpt, &impl->sdpMod);
        pjsip_endpt_unregister_module(endpt, &impl->mod);
    }
    impl->installed = false;
    if (g_impl == impl)
        g_impl = NULL;
}

void SipGuard::setLimits(unsigned maxCalls, unsigned perSourceCalls, double perSourceRate, double perSourceBurst,
                         unsigned retryAfter) {
    impl->maxCalls = maxCalls;
    impl->perSourceCalls = perSourceCalls;
    impl->perSourceRate = perSourceRate > 0 ? perSourceRate : 0;
    impl->perSourceBurst = perSourceBurst >= 1 ? perSourceBurst : 1;
    impl->retryAfter = retryAfter;
}

bool SipGuard::addTrusted(const std::string &address, unsigned prefixLen) {
    Net net;
    if (!parseAddress(address, &net.family, net.addr))
        return false;
    net.prefix = std::min(prefixLen, net.family == 4 ? 32u : 128u);
    impl->trusted.push_back(net);
    return true;
}

void SipGuard::setStopping(bool stopping) { impl->stopping = stopping; }

void SipGuard::callEnded(const std::string &sipCallId) {
    auto it = impl->live.find(sipCallId);
    if (it != impl->live.end())
        impl->release(it);
}

SipGuardCounts SipGuard::takeCounts() {
    SipGuardCounts out = impl->counts;
    impl->counts = SipGuardCounts();
    return out;
}

}  // namespace callcenter
