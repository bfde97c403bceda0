-- Forward-auth, hit path: one valid token on every request, so that after the first request
-- the gateway answers from its cache of verified tokens. No request() function: wrk then sends
-- one prepared request, and its own cost stays that of the nginx reference run.
-- WRK_TOKENS names a file of access tokens, one a line; the first is used.
local path = assert(os.getenv("WRK_TOKENS"), "WRK_TOKENS is not set")
local file = assert(io.open(path))
local token = assert(file:read("*l"), "no token in " .. path)
file:close()
wrk.headers["Authorization"] = "Bearer " .. token
