/*
 * call_media.cpp - see call_media.hpp.
 */
#include "call_media.hpp"

#include <pjmedia.h>
#include <pjsip.h>
#include <pjsip_ua.h>
#include <pjsua-lib/pjsua.h>
#include <pjsua-lib/pjsua_internal.h>

namespace callcenter {

int remoteTelephoneEvent(int callId, int mediaIndex)
{
    if (pjsua_get_state() != PJSUA_STATE_RUNNING || callId < 0 ||
        callId >= (int)PJSUA_MAX_CALLS || mediaIndex < 0 || !pjsua_call_is_active(callId))
        return -1;
    pjsip_inv_session *inv = pjsua_var.calls[callId].inv;
    if (!inv || !inv->neg)
        return -1;
    const pjmedia_sdp_session *remote = NULL;
    if (pjmedia_sdp_neg_get_active_remote(inv->neg, &remote) != PJ_SUCCESS || !remote ||
        (unsigned)mediaIndex >= remote->media_count)
        return -1;
    const pjmedia_sdp_media *m = remote->media[mediaIndex];
    for (unsigned i = 0; i < m->attr_count; ++i) {
        const pjmedia_sdp_attr *attr = m->attr[i];
        if (pj_stricmp2(&attr->name, "rtpmap") != 0)
            continue;
        pjmedia_sdp_rtpmap rtpmap;
        if (pjmedia_sdp_attr_get_rtpmap(attr, &rtpmap) != PJ_SUCCESS ||
            pj_stricmp2(&rtpmap.enc_name, "telephone-event") != 0)
            continue;
        for (unsigned f = 0; f < m->desc.fmt_count; ++f)  /* listed on the m-line, not just mapped */
            if (pj_strcmp(&m->desc.fmt[f], &rtpmap.pt) == 0)
                return 1;
    }
    return 0;
}

bool setTelephoneEvent(bool enabled)
{
    pjmedia_endpt *endpt = pjsua_get_pjmedia_endpt();
    if (!endpt)
        return false;
    pj_bool_t value = enabled ? PJ_TRUE : PJ_FALSE;
    return pjmedia_endpt_set_flag(endpt, PJMEDIA_ENDPT_HAS_TELEPHONE_EVENT_FLAG, &value) == PJ_SUCCESS;
}

}  // namespace callcenter
