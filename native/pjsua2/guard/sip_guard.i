/*
 * sip_guard.i - SWIG interface of the callcenter SIP guard (see sip_guard.hpp).
 *
 * build.sh appends `%include "sip_guard.i"` to a copy of pjproject's pjsua2.i:
 * pjsua2.SipGuard and pjsua2.SipGuardCounts, and call_media.hpp's functions
 * (pjsua2.remoteTelephoneEvent, pjsua2.setTelephoneEvent). Every one runs on the engine thread.
 */
%{
#include "sip_guard.hpp"
#include "call_media.hpp"
%}

%include "std_string.i"
%include "exception.i"
%exception callcenter::SipGuard::install {
    try { $action }
    catch (const std::exception &e) { SWIG_exception(SWIG_RuntimeError, e.what()); }
}
%include "sip_guard.hpp"
%include "call_media.hpp"
