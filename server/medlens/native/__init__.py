"""The native messaging host: how the browser extension finds, starts and pairs the server with no
terminal. `protocol` is the browsers' framing, `server_process` starts one background
`medlens serve`, `host` answers the extension, `install` registers the host with the browsers."""
