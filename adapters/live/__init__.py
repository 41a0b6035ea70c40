"""The live stream (issue 18): one tail of the log per API process, turned into updates
a UI can apply, fanned out to every WebSocket and SSE client of the process."""
