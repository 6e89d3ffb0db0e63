/*
 * call_media.hpp - what pjsua2 does not expose about a call's media (GPL-2.0-or-later).
 *
 *   remoteTelephoneEvent(callId, mediaIndex)   does the far end's active SDP offer RFC 4733
 *                                              telephone-event on that audio stream?
 *   setTelephoneEvent(enabled)                 offer telephone-event in SDP made from now on
 *                                              (pjmedia's endpoint flag; on by default)
 *
 * Engine thread only (the pjsua thread), after Endpoint::libInit and before libDestroy.
 * SWIG: included by sip_guard.i, so pjsua2.remoteTelephoneEvent and pjsua2.setTelephoneEvent.
 */
#ifndef CALLCENTER_CALL_MEDIA_HPP
#define CALLCENTER_CALL_MEDIA_HPP

namespace callcenter {

/** 1 if the call's active remote SDP lists telephone-event in the m-line mediaIndex (an
 *  index into the SDP's media, pjsua2's CallMediaInfo.index), 0 if not, -1 if unknown (no
 *  such call, no negotiated SDP yet, no such m-line). callId is pjsua's call id. */
int remoteTelephoneEvent(int callId, int mediaIndex);

/** Whether SDP offers and answers made from now on carry telephone-event (process-wide).
 *  Returns false if pjsua is not initialized. */
bool setTelephoneEvent(bool enabled);

}  // namespace callcenter

#endif
