"""The web page (issue 19): served by the daemon on `web.bind`:`web.port`, and by
`ytpiped web` read-only without one. See app.py for the routes and the safety rules."""
