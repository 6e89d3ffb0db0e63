/*
 * pjproject compile-time settings for the callcenter pjsua2 binding.
 *
 * Copied to pjlib/include/pj/config_site.h by build.sh before configure.
 * Changing this file changes the build cache key, so the next set-up rebuilds.
 */
#ifndef CALLCENTER_CONFIG_SITE_H
#define CALLCENTER_CONFIG_SITE_H

/* Hundreds of concurrent calls in one process (the PyPI wheel stops at 4). */
#define PJSUA_MAX_CALLS                 512
#define PJSUA_MAX_ACC                   32

/* Every call owns an RTP and an RTCP socket, plus SIP transports. */
#define PJ_IOQUEUE_MAX_HANDLES          4096
#define PJ_IOQUEUE_HAS_SAFE_UNREG       1

/* Conference bridge: one port per call, per player, per recorder, per tap. */
#define PJSUA_MAX_CONF_PORTS            (PJSUA_MAX_CALLS * 4)
#define PJSUA_MAX_PLAYERS               (PJSUA_MAX_CALLS * 2)
#define PJSUA_MAX_RECORDERS             (PJSUA_MAX_CALLS * 2)

/* No video: this is a telephony server (sound devices are off in configure). */
#define PJMEDIA_HAS_VIDEO               0

/* Telephony clock: 8 kHz unless the application asks for more. */
#define PJSUA_DEFAULT_CLOCK_RATE        8000
#define PJSUA_DEFAULT_AUDIO_FRAME_PTIME 20

/* Room for many dialogs and transactions at 40+ calls per second. */
#define PJSIP_MAX_TSX_COUNT             ((64 * 1024) - 1)
#define PJSIP_MAX_DIALOG_COUNT          ((64 * 1024) - 1)
#define PJSIP_UDP_SO_RCVBUF_SIZE        (4 * 1024 * 1024)
#define PJSIP_UDP_SO_SNDBUF_SIZE        (4 * 1024 * 1024)

/* Read every UDP datagram whole (the default 4000 silently truncates a larger one, and pjsip
 * then parses the remains as if complete). TCP messages over this size are dropped and logged. */
#define PJSIP_MAX_PKT_LEN               65536

/* Accept bursts of TCP connections (the default backlog is 5). */
#define PJSIP_TCP_TRANSPORT_BACKLOG     256

/* Keep full logging available; the application chooses the level. */
#define PJ_LOG_MAX_LEVEL                5

#endif
