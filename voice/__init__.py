"""SIP and media: the pjsua2 engine thread, audio helpers and the events it posts to asyncio."""
